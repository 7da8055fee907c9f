"""Test helpers for the batch layer: small input photos and readers of a batch's output
folder (its manifest, per-input outputs, visible output folders)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

from PIL import Image


def write_photo(path: Path, color=(200, 30, 30), size=(100, 80)) -> None:
    """A plain-colour RGB photo at ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def probe_json(out: Path, key: str) -> dict:
    """The ``probe.json`` the probe job wrote for input ``key``."""
    return json.loads((out / key / "probe.json").read_text())


def visible_dirs_with_files(out: Path) -> set[str]:
    """Output folders (relative keys) that hold files, hidden folders excluded.

    Safe while a batch runs: its hidden temporary folders are not entered (they come and go), and a
    folder that vanishes during the walk is skipped (``os.walk`` ignores it)."""
    found = set()
    for folder, subfolders, files in os.walk(out):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        rel = Path(folder).relative_to(out)
        if files and rel.parts:
            found.add(rel.as_posix())
    return found


def manifest_rows(out: Path) -> dict[str, dict]:
    """key -> row of the ``inputs`` table of ``out/manifest.sqlite``."""
    with contextlib.closing(sqlite3.connect(out / "manifest.sqlite")) as db:  # (closed: no file left open)
        db.row_factory = sqlite3.Row
        return {row["key"]: dict(row) for row in db.execute("SELECT * FROM inputs")}


def output_state(out: Path, key: str) -> tuple:
    """(name, bytes, mtime_ns) of every output file of ``key``: equal only if nothing was rewritten."""
    files = sorted((out / key).iterdir())
    return tuple((f.name, f.read_bytes(), f.stat().st_mtime_ns) for f in files)


def _fill_disk_run(input_path: Path, output_dir: Path, options, model):
    """The probe job on a disk that fills up: inputs named from ``c`` on meet ENOSPC while a ``FULL`` file lies
    beside them (the write has started: a partial file is left in the job's folder)."""
    import errno

    from facecast.pipelines.batch.probe import run_probe

    if (input_path.parent / "FULL").exists() and input_path.name >= "c":
        (output_dir / "probe.json").write_text("{")
        raise OSError(errno.ENOSPC, "No space left on device", str(output_dir / "probe.json"))
    return run_probe(input_path, output_dir, options, model)


def filling_disk_job():
    """A module-level (picklable) job for disk-full tests: see :func:`_fill_disk_run`."""
    from facecast.pipelines.batch.jobs import Job
    from facecast.pipelines.batch.probe import ProbeOptions, probe_outputs

    return Job("filling", ProbeOptions, _fill_disk_run, probe_outputs, frozenset({".png"}))
