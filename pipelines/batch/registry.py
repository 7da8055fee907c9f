"""The batch jobs by name (``--job``), each module imported only when its job is asked for.

Registering a job: add one line to :data:`JOBS` mapping its name to a factory that
imports lazily (listing jobs must not import torch)::

    def _track() -> Job:
        from facecast.pipelines.batch.facecast_jobs import TRACK_JOB
        return TRACK_JOB

    JOBS = {"probe": _probe, "track": _track, ...}
"""

from __future__ import annotations

from collections.abc import Callable

from facecast.pipelines.batch.jobs import BatchUsageError, Job

DEFAULT_JOB = "track"


def _probe() -> Job:
    from facecast.pipelines.batch.probe import PROBE_JOB

    return PROBE_JOB


def _track() -> Job:
    from facecast.pipelines.batch.facecast_jobs import TRACK_JOB

    return TRACK_JOB


def _reconstruct() -> Job:
    from facecast.pipelines.batch.facecast_jobs import RECONSTRUCT_JOB

    return RECONSTRUCT_JOB


#: Job name -> factory of the :class:`Job`. Factories import their module lazily.
JOBS: dict[str, Callable[[], Job]] = {"probe": _probe, "track": _track, "reconstruct": _reconstruct}


def resolve_job(job: str | Job) -> Job:
    """The registered job called ``job`` (a :class:`Job` passes through)."""
    if isinstance(job, Job):
        return job
    factory = JOBS.get(job)
    if factory is None:
        raise BatchUsageError(f"unknown job {job!r}; known jobs: {', '.join(sorted(JOBS))}")
    return factory()
