"""Where batch outputs live, and how one input's outputs appear all together or not at all.

Layout of a batch output folder::

    out/
      manifest.sqlite        the manifest (+ -wal/-shm while a batch runs)
      .lock                  held (flock) by the running batch
      .tmp-<id>/             an input being processed: the job writes here
      .trash-<id>/           outputs being replaced, deleted right after
      day 1/clip_mp4/...     finished outputs, one folder per input (its key)

A job writes into ``.tmp-<id>/``; when it succeeds the batch process renames that
folder onto ``out/<key>`` (:func:`publish`, one ``os.replace``), then records the
input as done. A run killed at any point leaves only ``.tmp-*`` / ``.trash-*``
folders (removed by :func:`clean_stale` at the next start) and complete output
folders; an input whose folder appeared but was not yet recorded is recomputed and
replaced.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facecast.pipelines.batch.jobs import BatchUsageError

MANIFEST_NAME = "manifest.sqlite"
LOCK_NAME = ".lock"


def _token(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def temp_dir(out: Path, key: str) -> Path:
    """The temporary folder the job for ``key`` writes into."""
    return out / f".tmp-{_token(key)}"


def final_dir(out: Path, key: str) -> Path:
    """The folder that holds the finished outputs of ``key``."""
    final = Path(os.path.normpath(out / key))
    if out not in final.parents:
        raise ValueError(f"output key {key!r} leaves the output folder {out}")
    return final


def publish(out: Path, key: str) -> Path:
    """Move the temporary folder of ``key`` into place (replacing older outputs) and return it."""
    final = final_dir(out, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    retire(out, key)
    os.replace(temp_dir(out, key), final)
    return final


def retire(out: Path, key: str) -> None:
    """Remove the finished outputs of ``key`` (renamed aside first, so none is half-deleted)."""
    final = final_dir(out, key)
    if final.is_dir() and not final.is_symlink():
        trash = out / f".trash-{_token(key)}"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)


def discard(out: Path, key: str) -> None:
    """Remove the temporary folder of ``key``."""
    shutil.rmtree(temp_dir(out, key), ignore_errors=True)


def clean_stale(out: Path) -> list[Path]:
    """Remove ``.tmp-*`` and ``.trash-*`` folders left by a killed run; returns what went."""
    stale = sorted([*out.glob(".tmp-*"), *out.glob(".trash-*")])
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def prepare_output_dir(output_dir: str | os.PathLike) -> Path:
    """The absolute output folder, created if missing; :class:`BatchUsageError` if unusable."""
    out = Path(output_dir).absolute()
    if out.exists() and not out.is_dir():
        raise BatchUsageError(f"output {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchUsageError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
    if not os.access(out, os.W_OK):
        raise BatchUsageError(f"output folder {out} is not writable")
    return out


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold the output folder's lock; a second batch on the same folder is refused."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): run unguarded
        yield
        return
    with open(out / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BatchUsageError(f"another batch is writing to {out}; wait for it or use "
                                  f"another output folder") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
