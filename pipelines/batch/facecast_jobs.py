"""The real batch jobs: ``track`` (videos) and ``reconstruct`` (photos).

Each worker loads the ICT model once (``load``) and reuses it for every input; the
job writes into the temporary folder the batch layer gives it (see
:mod:`facecast.pipelines.batch.jobs`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from facecast.pipelines.batch.jobs import NO_OUTPUT_EFFECT, Job, JobResult
from facecast.pipelines.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

TRACK_OUTPUTS = ("coeffs.csv", "coeffs.jsonl", "mesh.obj", "mesh.pc2", "track.json")
RECONSTRUCT_OUTPUTS = ("head.glb", "head.json")


@dataclass(frozen=True)
class TrackOptions:
    """Options of the ``track`` batch job (see ``facecast track --help``)."""

    pose: str = "full"
    smooth: float = 0.02
    max_frames: int | None = None
    preview: bool = False
    mode: str = "accurate"
    assets: str = field(default="", metadata=NO_OUTPUT_EFFECT)

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if not (math.isfinite(self.smooth) and 0 <= self.smooth <= 100):
            raise ValueError(f"smooth must be a finite number in [0, 100], got {self.smooth}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")


@dataclass(frozen=True)
class ReconstructOptions:
    """Options of the ``reconstruct`` batch job (see ``facecast reconstruct --help``)."""

    face_index: int = 0
    texture: bool = True
    preview: bool = False
    mode: str = "accurate"
    assets: str = field(default="", metadata=NO_OUTPUT_EFFECT)

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if self.face_index < 0:
            raise ValueError(f"face_index must be >= 0 (0 is the largest face), got {self.face_index}")


def _check_mode(mode: str) -> None:
    from facecast.recon.photo import MODES

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def load_model(options: TrackOptions | ReconstructOptions):
    """The ICT model, once per worker process."""
    from facecast.recon.model.morphable import MorphableModel

    return MorphableModel.load(options.assets or None)


class PhotoWorker:
    """A worker's model and its photo pipelines, built once per configuration and reused for every
    photo (a pipeline per photo would open MediaPipe graphs, regressor and texture layout each time)."""

    def __init__(self, model) -> None:
        self.model = model
        self._pipelines: dict = {}

    def pipeline(self, config):
        from facecast.pipelines.commands.reconstruct import PhotoPipeline

        key = repr(config)
        if key not in self._pipelines:
            self._pipelines[key] = PhotoPipeline(self.model, config)
        return self._pipelines[key]


def load_photo_worker(options: ReconstructOptions) -> PhotoWorker:
    """The ICT model and a pipeline cache, once per worker process."""
    return PhotoWorker(load_model(options))


def track_outputs(input_path: Path, options: TrackOptions) -> tuple[str, ...]:
    return TRACK_OUTPUTS + (("preview.mp4",) if options.preview else ())


def run_track(input_path: Path, output_dir: Path, options: TrackOptions, model) -> JobResult:
    from dataclasses import replace

    from facecast.pipelines.commands.track import TrackJobConfig, track
    from facecast.recon.fit.tracking import TrackConfig

    config = TrackJobConfig(tracking=replace(TrackConfig(), temporal_weight=options.smooth, mode=options.mode),
                            pose=options.pose,
                            max_frames=options.max_frames, preview=options.preview)
    summary = track(input_path, output_dir, config, model=model, show_progress=False)
    names = tuple(sorted(p.relative_to(output_dir).as_posix() for p in summary.files))
    return JobResult(names, summary.frames, summary.seconds)


def reconstruct_outputs(input_path: Path, options: ReconstructOptions) -> tuple[str, ...]:
    return RECONSTRUCT_OUTPUTS + (("head_preview.png",) if options.preview else ())


def run_reconstruct(input_path: Path, output_dir: Path, options: ReconstructOptions,
                    worker: PhotoWorker) -> JobResult:
    from facecast.pipelines.commands.reconstruct import ReconstructConfig, reconstruct
    from facecast.recon.photo import PhotoConfig

    start = time.perf_counter()
    config = ReconstructConfig(photo=PhotoConfig(mode=options.mode, face_index=options.face_index),
                               bake_texture=options.texture)
    written = reconstruct(input_path, output_dir / "head.glb", (), config, preview=options.preview,
                          pipeline=worker.pipeline(config))
    names = tuple(sorted(p.relative_to(output_dir).as_posix() for p in written))
    return JobResult(names, 1, time.perf_counter() - start)


TRACK_JOB = Job(name="track", options_type=TrackOptions, run=run_track, outputs_for=track_outputs,
                suffixes=VIDEO_SUFFIXES, load=load_model)
RECONSTRUCT_JOB = Job(name="reconstruct", options_type=ReconstructOptions, run=run_reconstruct,
                      outputs_for=reconstruct_outputs, suffixes=IMAGE_SUFFIXES,
                      load=load_photo_worker)
