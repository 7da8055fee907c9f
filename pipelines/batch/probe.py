"""The ``probe`` batch job: read a photo or video the way the real jobs do, write its facts.

Outputs per input: ``probe.json`` (kind, size, frames, fps and first/last frame times
of videos) and ``thumbnail.png`` (the photo or the first video frame, longest side
``thumbnail_size``). Reading goes through :mod:`facecast.pipelines.media`, so every
input the real jobs cannot read fails here too, with the same :class:`MediaError`.

It is the default job until the real ones are wired in, the job of the batch tests
and benchmark, and it carries two options for testing the batch layer itself:
``delay_s`` (slow each input down) and ``crash_on`` (kill the worker process).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.pipelines.batch.jobs import NO_OUTPUT_EFFECT, Job, JobResult
from facecast.pipelines.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

PROBE_OUTPUTS = ("probe.json", "thumbnail.png")


@dataclass(frozen=True)
class ProbeOptions:
    """Options of ``probe``.

    Attributes:
        thumbnail_size: longest side of ``thumbnail.png`` in pixels.
        delay_s: seconds to sleep per input before writing (tests of kill and resume).
        crash_on: fault injection: inputs whose file name contains this text end their
            worker process with ``os._exit(1)``.
        crash_marker_dir: with ``crash_on``: crash only on the first attempt per input,
            remembered by a marker file in this folder (empty: crash on every attempt).
    """

    thumbnail_size: int = 64
    delay_s: float = field(default=0.0, metadata=NO_OUTPUT_EFFECT)
    crash_on: str = field(default="", metadata=NO_OUTPUT_EFFECT)
    crash_marker_dir: str = field(default="", metadata=NO_OUTPUT_EFFECT)

    def __post_init__(self) -> None:
        if not 8 <= self.thumbnail_size <= 4096:
            raise ValueError(f"thumbnail_size must be in [8, 4096], got {self.thumbnail_size}")
        if self.delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s}")


def probe_outputs(input_path: Path, options: ProbeOptions) -> tuple[str, ...]:
    """File names ``probe`` writes for any input."""
    return PROBE_OUTPUTS


def run_probe(input_path: Path, output_dir: Path, options: ProbeOptions, model: object) -> JobResult:
    """Read ``input_path`` (photo or video) and write ``probe.json`` + ``thumbnail.png``."""
    start = time.perf_counter()
    _maybe_crash(input_path, options)
    if input_path.suffix.lower() in VIDEO_SUFFIXES:
        facts, first = _probe_video(input_path)
    else:
        facts, first = _probe_image(input_path)
    if options.delay_s:
        time.sleep(options.delay_s)
    (output_dir / "probe.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    _write_thumbnail(first, options.thumbnail_size, output_dir / "thumbnail.png")
    return JobResult(PROBE_OUTPUTS, int(facts["frames"]), time.perf_counter() - start)


def _probe_image(path: Path) -> tuple[dict, np.ndarray]:
    from facecast.pipelines.media import image_size, read_image

    rgb = read_image(path)  # at most WORKING_SIDE px: enough for a thumbnail
    width, height = image_size(path)  # the photo's own size
    return {"kind": "image", "width": width, "height": height, "frames": 1}, rgb


def _probe_video(path: Path) -> tuple[dict, np.ndarray]:
    from facecast.pipelines.media import iter_frames, probe_video

    info = probe_video(path)
    first = None
    count, first_time, last_time = 0, 0.0, 0.0
    for frame in iter_frames(path):
        if first is None:
            first, first_time = frame.rgb, frame.time
        count, last_time = count + 1, frame.time
    height, width = first.shape[:2]
    facts = {"kind": "video", "width": width, "height": height, "frames": count,
             "fps": round(info.fps, 4), "first_time": round(first_time, 4),
             "last_time": round(last_time, 4)}
    return facts, first


def _write_thumbnail(rgb: np.ndarray, size: int, path: Path) -> None:
    from PIL import Image

    image = Image.fromarray(rgb)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    image.save(path, format="PNG")


def _maybe_crash(input_path: Path, options: ProbeOptions) -> None:
    if not options.crash_on or options.crash_on not in input_path.name:
        return
    if options.crash_marker_dir:
        digest = hashlib.sha1(str(input_path).encode()).hexdigest()[:16]
        marker = Path(options.crash_marker_dir) / f"crashed-{digest}"
        if marker.exists():
            return
        marker.touch()
    os._exit(1)


PROBE_JOB: Job[ProbeOptions] = Job(
    name="probe", options_type=ProbeOptions, run=run_probe, outputs_for=probe_outputs,
    suffixes=IMAGE_SUFFIXES | VIDEO_SUFFIXES,
)
