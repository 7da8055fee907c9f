"""Throughput of the batch layer (local engine): files/min and frames/s per worker count.

Usage:
    python benchmarks/batch.py                        # probe on copies of ../shared/media/videos
    python benchmarks/batch.py --job track --workers 1 2 4
    python benchmarks/batch.py --inputs '../shared/media/lfpw68-train/*.jpg' -O thumbnail_size=128

Each worker count runs the whole batch into a fresh output folder, so the times
include starting the worker processes and loading the job's model in each.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from facecast.pipelines.batch.jobs import parse_option_pairs
from facecast.pipelines.batch.runner import run

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "media" / "videos"


def default_inputs(folder: Path, copies: int) -> list[str]:
    """``copies`` copies of each shared video in ``folder`` (distinct files, real content)."""
    for video in sorted(SHARED_VIDEOS.glob("*.mp4")):
        for copy in range(copies):
            shutil.copyfile(video, folder / f"{video.stem}-{copy}.mp4")
    return [str(folder)]


def measure(inputs: list[str], job: str, workers: int, options: dict, scratch: Path) -> dict:
    """Run the batch once with ``workers`` processes; its JSON summary."""
    out = scratch / f"out-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    summary = run(inputs, out, job=job, workers=workers, job_options=options)
    data = summary.to_dict()
    if data["totals"]["failed"]:
        failed = [i["path"] for i in data["inputs"] if i["status"] == "failed"]
        print(f"warning: {len(failed)} inputs failed: {failed[:3]}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", default="probe")
    parser.add_argument("--inputs", nargs="+", help="files, folders or globs (default: shared videos)")
    parser.add_argument("--copies", type=int, default=3, help="copies of each shared video by default")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-O", "--option", action="append", default=[], help="job option KEY=VALUE")
    args = parser.parse_args()
    options = parse_option_pairs(args.option)
    with tempfile.TemporaryDirectory(prefix="facecast-batch-bench-") as tmp:
        scratch = Path(tmp)
        inputs = args.inputs
        if not inputs:
            (scratch / "inputs").mkdir()
            inputs = default_inputs(scratch / "inputs", args.copies)
        rows = [measure(inputs, args.job, w, options, scratch) for w in args.workers]
    base = rows[0]["wall_seconds"]
    print(f"job {args.job}: {rows[0]['totals']['inputs']} inputs, {rows[0]['frames']} frames")
    print(f"{'workers':>7} {'done':>5} {'failed':>6} {'wall s':>8} {'files/min':>10} "
          f"{'frames/s':>9} {'speed-up':>8}")
    for workers, row in zip(args.workers, rows, strict=True):
        print(f"{workers:7d} {row['totals']['done']:5d} {row['totals']['failed']:6d} "
              f"{row['wall_seconds']:8.2f} {row['files_per_minute']:10.1f} "
              f"{row['frames_per_second']:9.1f} {base / row['wall_seconds']:8.2f}x")


if __name__ == "__main__":
    main()
