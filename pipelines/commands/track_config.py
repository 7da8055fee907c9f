"""Options and summary of ``facecast track`` (:mod:`facecast.pipelines.commands.track`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facecast.recon.fit.tracking import TrackConfig
from facecast.recon.model.topology import DEFAULT_AVATAR_REGIONS

POSES = ("full", "rotation", "none")
MESH_FORMATS = ("pc2", "obj")


@dataclass
class TrackJobConfig:
    """Options of ``facecast track``."""

    tracking: TrackConfig = field(default_factory=TrackConfig)
    mesh_format: str = "pc2"
    pose: str = "full"
    regions: tuple[str, ...] = DEFAULT_AVATAR_REGIONS
    preview: bool = False  # preview.mp4 costs ~20 % of the run (benchmarks/end_to_end.py)
    preview_side: int = 640
    iris_weight: float = 0.3
    view_offsets: bool = False  # the calibrated mapping's view-dependent offsets (see mediapipe478_mapping)
    regressor: str | Path | None = None  # fast / refine weights (None: the shipped regressor)
    fast_smoothing: bool = True  # fast mode: causal One Euro filter (pipelines/commands/smoothing.py)
    face_index: int = 0
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.mesh_format not in MESH_FORMATS:
            raise ValueError(f"mesh format must be one of {MESH_FORMATS}, got {self.mesh_format!r}")
        if self.pose not in POSES:
            raise ValueError(f"pose must be one of {POSES}, got {self.pose!r}")


@dataclass
class TrackSummary:
    """What a tracking run produced."""

    frames: int
    fps: float
    gaps: list[int]
    files: list[Path]
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)  # wall seconds per stage (see StageClock)
    warnings: list[str] = field(default_factory=list)  # what the user should know (e.g. packets skipped)
