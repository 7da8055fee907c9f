"""Batch processing: one job over many photos/videos, resumable, on local processes or Ray.

Python::

    from facecast.pipelines.batch.runner import run
    summary = run("footage/**/*.mp4", "out", job="track", workers=2)
    summary.count("failed"), summary.exit_code

Command line (``facecast batch`` once registered, or ``python -m facecast.pipelines.batch.runner``)::

    facecast batch 'footage/**/*.mp4' photos/ -o out --job track --workers 2 --json

Each input gets an output folder ``out/<relative path>`` (see
:mod:`~facecast.pipelines.batch.inputs`), written atomically (see
:mod:`~facecast.pipelines.batch.outputs`) and recorded in ``out/manifest.sqlite``
(see :mod:`~facecast.pipelines.batch.manifest`). A rerun skips inputs that are done
with unchanged content (sha256), job and output-relevant options, and outputs still
present; it recomputes changed ones, reruns those a killed run left ``running``, and
retries ``failed`` ones only with ``retry_failed``. Files the job does not read
(by suffix) are ``skipped``.

Exit codes: 0 no input failed, 1 some failed, 2 usage error (no inputs, bad option).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from facecast.pipelines.batch import outputs
from facecast.pipelines.batch.engines import (
    ENGINES,
    Task,
    TaskOutcome,
    available_cores,
    check_picklable,
    check_reachable,
    run_local,
    run_ray,
)
from facecast.pipelines.batch.inputs import BatchInput, expand_inputs, inspect_input
from facecast.pipelines.batch.jobs import BatchUsageError, Job, make_options, options_fingerprint, parse_option_pairs
from facecast.pipelines.batch.manifest import DiskFullError, Manifest, ManifestRow, is_disk_full, one_line
from facecast.pipelines.batch.registry import DEFAULT_JOB, JOBS, resolve_job
from facecast.pipelines.batch.report import BatchProgress, BatchSummary, InputReport, print_summary
from facecast.pipelines.errors import USER_ERROR_EXIT, report_user_error

__all__ = ["BatchSummary", "BatchUsageError", "InputReport", "run", "batch_command", "main"]


def run(inputs: str | os.PathLike | Sequence[str | os.PathLike], output_dir: str | os.PathLike,
        job: str | Job = DEFAULT_JOB, engine: str = "local", workers: int | None = None,
        retry_failed: bool = False, ray_address: str | None = None,
        job_options: object | Mapping[str, object] | None = None, *, max_retries: int = 3,
        progress: bool = False) -> BatchSummary:
    """Run ``job`` on every input (files, folders, globs) into ``output_dir``.

    Args:
        job: a registered name (:data:`~facecast.pipelines.batch.jobs.JOBS`) or a Job.
        engine: ``local`` (process pool) or ``ray``.
        workers: local processes / CPUs of a new local Ray instance (default: all cores).
        ray_address: an existing Ray cluster (``ray://host:10001``, ``auto``); every node
            must see the inputs and ``output_dir`` at the same paths (a shared file system).
        job_options: the job's options dataclass, or a mapping of its fields.
        max_retries: Ray's retries of a task whose worker died.
        progress: show the live progress display on stderr.

    Raises :class:`BatchUsageError` when the batch cannot start as asked.
    """
    start = time.perf_counter()
    spec = resolve_job(job)
    options = make_options(spec, job_options)
    check_picklable(spec, options)
    workers = _check_engine(engine, workers, ray_address, max_retries)
    if ray_address:
        check_reachable(ray_address)
    patterns = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    items = expand_inputs(patterns, Path(output_dir).absolute())  # before the output folder: a usage error
    out = outputs.prepare_output_dir(output_dir)                  # leaves no folder behind
    with outputs.exclusive(out), Manifest(out / outputs.MANIFEST_NAME) as manifest:
        outputs.clean_stale(out)
        state = _BatchState(out, manifest)
        try:
            tasks = _plan(items, spec, options, state, retry_failed)
            with BatchProgress(len(tasks), progress) as state.progress:
                if engine == "ray":
                    run_ray(tasks, workers, ray_address, max_retries, state.on_start, state.on_done)
                else:
                    run_local(tasks, workers, state.on_start, state.on_done)
        except DiskFullError as exc:
            raise _stop_for_disk(out, manifest, items) from exc
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM: no temporary folder left, nothing lost
            _hand_back(out, manifest, items)
            raise
        reports = tuple(InputReport.from_row(manifest.get(i.key), i.key in state.ran) for i in items)
    return BatchSummary(spec.name, engine, workers, str(out), str(out / outputs.MANIFEST_NAME),
                        reports, time.perf_counter() - start)


def _check_engine(engine: str, workers: int | None, ray_address: str | None,
                  max_retries: int) -> int:
    if engine not in ENGINES:
        raise BatchUsageError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if ray_address and engine != "ray":
        raise BatchUsageError("--ray-address needs --engine ray")
    if workers is not None and workers < 1:
        raise BatchUsageError(f"--workers must be at least 1, got {workers}")
    if max_retries < 0:
        raise BatchUsageError(f"max_retries must be >= 0, got {max_retries}")
    return workers or available_cores()


@dataclass
class _BatchState:
    """The batch process's side of a run: manifest updates and output commits."""

    out: Path
    manifest: Manifest
    ran: set[str] = field(default_factory=set)
    progress: BatchProgress | None = None

    def on_start(self, task: Task) -> None:
        self.manifest.mark_running(task.key)

    def on_done(self, outcome: TaskOutcome) -> None:
        key = outcome.key
        if outcome.ok:
            try:
                final = outputs.publish(self.out, key)
            except OSError as exc:  # e.g. disk full, or a file where the folder goes
                outcome = TaskOutcome(key, False, seconds=outcome.seconds, worker=outcome.worker,
                                      error_type=type(exc).__name__,
                                      error_message=f"cannot move the outputs into place: {exc}",
                                      disk_full=is_disk_full(exc))
        if outcome.disk_full:  # not the input's fault: stop, and let a rerun take it again
            outputs.discard(self.out, key)
            raise DiskFullError(outcome.error_message or "no space left on the output disk")
        if outcome.ok:
            relative = tuple((final / name).relative_to(self.out).as_posix()
                             for name in outcome.outputs)
            self.manifest.mark_done(key, relative, outcome.frames, outcome.seconds or 0.0,
                                    outcome.worker or "")
        else:
            outputs.discard(self.out, key)
            outputs.retire(self.out, key)  # outputs of an older content would be stale
            self.manifest.mark_failed(key, outcome.error_type or "Error",
                                      outcome.error_message or "", outcome.seconds, outcome.worker)
        if self.progress is not None:
            self.progress.advance(outcome.ok, outcome.frames)


def _hand_back(out: Path, manifest: Manifest, items: Sequence[BatchInput]) -> int:
    """Remove the unfinished work and hand started inputs back (pending); returns how many inputs are done."""
    outputs.clean_stale(out)
    done = 0
    for item in items:
        row = manifest.get(item.key)
        done += row is not None and row.status == "done"
        with contextlib.suppress(DiskFullError):
            manifest.mark_pending(item.key)
    return done


def _stop_for_disk(out: Path, manifest: Manifest, items: Sequence[BatchInput]) -> DiskFullError:
    """Remove the unfinished work, hand started inputs back (pending) and say where the batch stands."""
    done = _hand_back(out, manifest, items)
    return DiskFullError(f"no space left on the disk holding {out}: the batch stopped with {done} of {len(items)} "
                         "inputs done (kept and recorded); free some space and run the same command again to go on")


def _plan(items: Sequence[BatchInput], job: Job, options: object, state: _BatchState,
          retry_failed: bool) -> list[Task]:
    """Record every input in the manifest; return tasks for those to process now."""
    recipe = options_fingerprint(job, options)
    tasks = []
    for item in items:
        suffix = item.path.suffix.lower()
        if suffix not in job.suffixes:
            reason = f"job {job.name} does not read {suffix or 'suffix-less'} files"
            state.manifest.mark_skipped(item.key, str(item.path), recipe, reason)
            continue
        facts, problem = inspect_input(item.path)
        row = state.manifest.observe(item.key, str(item.path), facts, recipe)
        if not _needs_run(row, retry_failed, state.out):
            continue
        state.ran.add(item.key)
        if problem is not None:  # unreadable before any job sees it
            state.manifest.mark_running(item.key)
            state.on_done(TaskOutcome(item.key, False, error_type=type(problem).__name__,
                                      error_message=one_line(str(problem))))
            continue
        tasks.append(Task(item.key, str(item.path), str(outputs.temp_dir(state.out, item.key)),
                          job, options, threads=1))
    return tasks


def _needs_run(row: ManifestRow, retry_failed: bool, out: Path) -> bool:
    if row.status == "done":
        return not row.outputs or not all((out / p).is_file() for p in row.outputs)
    if row.status == "failed":
        return retry_failed
    return True  # pending, running (a killed run), skipped before


_INPUTS_HELP = "Files, folders (recursive) or glob patterns; quote globs: 'footage/**/*.mp4'."
_JOB_HELP = f"Job to run on each input: {', '.join(sorted(JOBS))}."
_OUTPUT_HELP = "Output folder (one folder per input, manifest.sqlite)."
_RETRY_HELP = "Retry inputs that failed before."
_RAY_HELP = "Existing Ray cluster (with --engine ray); its nodes must see the input and output folders."
_QUIET_HELP = "No progress display or summary table."
_OPTION_HELP = ("Job option KEY=VALUE (repeatable). track: pose, smooth, max_frames, preview, "
                "mode=accurate|refine|fast; reconstruct: face_index, texture, preview, mode; "
                "probe: thumbnail_size. E.g. -O mode=fast.")


def batch_command(
    inputs: Annotated[list[str], typer.Argument(help=_INPUTS_HELP, show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help=_OUTPUT_HELP)],
    job: Annotated[str, typer.Option(help=_JOB_HELP)] = DEFAULT_JOB,
    engine: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help=_RETRY_HELP)] = False,
    ray_address: Annotated[str | None, typer.Option(help=_RAY_HELP)] = None,
    option: Annotated[list[str] | None, typer.Option("-O", "--option", help=_OPTION_HELP)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help=_QUIET_HELP)] = False,
) -> None:
    """Run one job over many photos/videos; resumable (out/manifest.sqlite).

    Reruns skip inputs done with unchanged content and recompute changed ones; failed
    inputs are retried only with --retry-failed. Exit status: 0 all succeeded, 1 some
    inputs failed, 2 usage error.
    """
    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON summary only
        summary = run(inputs, output, job=job, engine=engine, workers=workers,
                      retry_failed=retry_failed, ray_address=ray_address,
                      job_options=parse_option_pairs(option or []), progress=not quiet)
    if not quiet:
        print_summary(summary)
    if json_output:
        typer.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    raise typer.Exit(summary.exit_code)


def main(argv: list[str] | None = None) -> None:
    """``python -m facecast.pipelines.batch.runner``: the batch command on its own."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(name="batch")(batch_command)
    try:
        app(args=argv, prog_name="facecast-batch")
    except BatchUsageError as exc:
        report_user_error(exc)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":
    main()
