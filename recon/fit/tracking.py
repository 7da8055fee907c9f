"""Video fitting: one identity per clip, per-frame pose and expression, flat memory.

The stream of per-frame landmarks is consumed in two phases:

1. **identity**: the first ``identity_frames`` frames with a face (taken with a
   stride over the first ``identity_window`` frames) are fitted jointly with one
   shared identity;
2. **frames**: every frame, in chunks of ``chunk`` consecutive frames, is fitted
   with that identity frozen, warm-started from the previous frame and tied to it
   by a temporal term. Only the current chunk (and the identity window) is held in
   memory, so memory is flat in the video length.

Frames without a face hold the last pose and are reported as gaps.

With a trained :class:`~facecast.recon.learn.regressor.Regressor` (``TrackConfig.mode``):
``fast`` takes pose and expression of each frame from one regressor pass and the
identity as the mean of its identities over the identity frames; ``refine``
warm-starts ``refine_steps`` fit steps per chunk from those regressor outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from facecast.recon.fit.gaze import EyeRig, eye_gaze
from facecast.recon.fit.landmark_fit import FitConfig, LandmarkTarget, QuickChannels, TemporalAnchor, fit_landmarks
from facecast.recon.fit.levenberg_marquardt import SolverConfig
from facecast.recon.fit.video_solver import solve_chunk
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs


@dataclass
class FrameLandmarks:
    """Detector output for one frame: points ``(N, 2)`` pixels and weight ``(N,)``, or None (no face);
    crop ``(3, S, S)`` in [0, 1]: the face crop an image-branch regressor needs (else None)."""

    index: int
    time: float
    image_size: tuple[int, int]
    points: torch.Tensor | None
    weight: torch.Tensor | None = None
    crop: torch.Tensor | None = None


@dataclass
class TrackedFrame:
    """One fitted frame: ``coeffs`` is a batch of one; ``detected`` is False for held gaps; ``gaze``
    ``(6,)`` radians, the eyes' yaw / pitch / roll (left, right) from the iris landmarks
    (:func:`~facecast.recon.fit.gaze.eye_gaze`), or None when the landmarks have no irises."""

    index: int
    time: float
    coeffs: FaceCoeffs
    detected: bool
    gaze: np.ndarray | None = None


@dataclass
class TrackConfig:
    """Video fitting schedule and weights.

    Defaults chosen on the synthetic transfer benchmark (benchmarks/transfer.py): 200
    warm-started steps per 16-frame chunk at lr 0.05 and identity from 16 frames gave
    1.00 mm face error vs 1.16 mm for 60 steps per 8 frames and 8 identity frames. The
    expression prior is 10x the photo fit's: spurious small activations cost more over a
    clip than in one photo (face error 1.03 -> 0.93 mm on the reported case, 0.98 -> 0.89
    and 0.98 -> 0.86 mm on two held-out seeds; mean channel correlation within 0.04).
    """

    fit: FitConfig = field(default_factory=lambda: FitConfig(warm_steps=200, lr=0.05, expression_prior=2e-4))
    identity_frames: int = 16
    identity_window: int = 64
    chunk: int = 16
    temporal_weight: float = 0.02  # 0 disables the temporal term (for ablations)
    mode: str = "accurate"  # or "fast" / "refine" (need a regressor, see the module docstring)
    refine_steps: int = 40
    #: accurate mode's chunk solver: "levenberg_marquardt" (:mod:`facecast.recon.fit.video_solver`,
    #: ``solver_iterations`` per chunk) or "adam" (``fit.warm_steps`` steps per chunk, the former default)
    solver: str = "levenberg_marquardt"
    solver_iterations: int = 10
    #: channels that move in a few frames (every video solver holds them more loosely: ``quick_prior`` x
    #: the expression prior, ``quick_temporal`` x the frame-to-frame term), so that blinks
    #: and winks survive (benchmarks/expression_clips.py: blink peak reach 0.03 with the shared weights)
    quick_channels: tuple[str, ...] = ("eyeBlinkLeft", "eyeBlinkRight")
    quick_prior: float = 0.1
    quick_temporal: float = 0.02
    #: accurate mode (Levenberg-Marquardt): the frame-to-frame term's weight on the head rotation's second
    #: difference (times ``temporal_weight``). Expressions tug the fitted pose (a wink or an open jaw
    #: turns the head by 2-4 degrees for a frame and back); this damps such a jump and not a steady turn.
    #: 100 on the 20 synthetic clips of benchmarks/expression_clips.py: largest jump on still-headed
    #: stretches 5.17 -> 1.64 degrees, mean of the per-clip largest 1.96 -> 0.95 (benchmarks/README.md).
    #: Not in refine mode: in its 40 Adam steps it made real-video jitter worse (talk1 0.118 -> 0.155 mm)
    rotation_acceleration: float = 100.0

    def __post_init__(self) -> None:
        if self.mode not in ("fast", "refine", "accurate"):
            raise ValueError(f"mode must be fast, refine or accurate, got {self.mode!r}")
        if self.solver not in ("levenberg_marquardt", "adam"):
            raise ValueError(f"solver must be levenberg_marquardt or adam, got {self.solver!r}")


def _target(frames: list[FrameLandmarks]) -> LandmarkTarget:
    points = torch.stack([f.points for f in frames])
    weight = torch.stack([f.weight if f.weight is not None else torch.ones(len(f.points)) for f in frames])
    size = torch.tensor([f.image_size for f in frames])
    return LandmarkTarget(points.to(torch.float32), weight.to(torch.float32), size)


def _cast(target: LandmarkTarget, dtype: torch.dtype) -> LandmarkTarget:
    return LandmarkTarget(target.points.to(dtype), target.weight.to(dtype), target.image_size)


def estimate_identity(sparse: SparseLandmarks, frames: list[FrameLandmarks],
                      config: TrackConfig) -> torch.Tensor:
    """``(1, 100)`` identity fitted jointly over ``frames`` (all with a face)."""
    if not frames:
        raise ValueError("no frame with a face to estimate the identity from")
    fit = replace(config.fit, shared_identity=True, temporal_weight=0.0)
    coeffs = fit_landmarks(sparse, _cast(_target(frames), sparse.model.neutral.dtype), fit)
    return coeffs.identity[:1]


def regress_frames(regressor, frames: list[FrameLandmarks], dtype: torch.dtype) -> FaceCoeffs:
    """Regressor coefficients of frames with a face (points in renderer pixels, as the tracker holds them)."""
    from facecast.recon.landmarks.detector import faces_from_points
    from facecast.recon.model.coeffs import PIXEL_OFFSET

    points = torch.stack([f.points for f in frames]).detach().cpu().double().numpy() - PIXEL_OFFSET
    faces = faces_from_points(points)
    crops = None
    if regressor.config.image_branch:
        if any(f.crop is None for f in frames):
            raise ValueError("this regressor has an image branch: every frame needs its face crop")
        crops = torch.stack([f.crop for f in frames])
    return regressor.predict(faces, None, [f.image_size for f in frames], crops=crops).to(dtype)


class VideoTracker:
    """Streams :class:`TrackedFrame` results for a stream of :class:`FrameLandmarks`.

    regressor: a :class:`~facecast.recon.learn.regressor.Regressor`, needed by the ``fast`` and
    ``refine`` modes; with an image branch, every frame with a face must carry its crop
    (:attr:`crop_geometry` says which).
    """

    def __init__(self, sparse: SparseLandmarks, config: TrackConfig = TrackConfig(), regressor=None):
        if config.mode != "accurate" and regressor is None:
            raise ValueError(f"mode {config.mode!r} needs a regressor")
        self.sparse, self.config, self.regressor = sparse, config, regressor
        self.identity: torch.Tensor | None = None
        self.gaps: list[int] = []
        self._last: FaceCoeffs | None = None
        self._earlier: torch.Tensor | None = None  # the rotation of the frame before _last
        self._gaze: np.ndarray | None = None  # that of _last
        self._eyes = EyeRig.build(sparse)
        self._leading: list[FrameLandmarks] = []
        names = list(sparse.model.expression_names)
        unknown = [n for n in config.quick_channels if n not in names]
        if unknown:
            raise ValueError(f"quick_channels names no expression channel of the model: {unknown}")
        self._quick = QuickChannels(tuple(names.index(n) for n in config.quick_channels), config.quick_prior,
                                    config.quick_temporal)

    @property
    def crop_geometry(self) -> tuple[int, float] | None:
        """``(crop size, crop scale)`` the frames' crops must have, or None when no crop is used."""
        r = self.regressor
        if r is None or self.config.mode == "accurate" or not r.config.image_branch:
            return None
        return r.config.crop_size, r.config.crop_scale

    def _fit_chunk(self, chunk: list[FrameLandmarks]) -> Iterator[TrackedFrame]:
        found = [f for f in chunk if f.points is not None]
        fitted: dict[int, FaceCoeffs] = {}
        if found:
            dtype = self.sparse.model.neutral.dtype
            fit = replace(self.config.fit, temporal_weight=self.config.temporal_weight)
            init = None
            anchor = None
            if self._last is not None:
                init = FaceCoeffs.cat([self._last] * len(found))
                last = self._last
                anchor = TemporalAnchor(last.rotation, last.translation, last.expression, self._earlier)
            if self.config.mode == "accurate" and self.config.solver == "levenberg_marquardt":
                target = _cast(_target(found), dtype)
                if init is None:  # the first chunk: PnP and the rigid stage give the warm start
                    init = fit_landmarks(self.sparse, target, replace(fit, steps=0), identity=self.identity)
                solver = SolverConfig(iterations=self.config.solver_iterations)
                coeffs = solve_chunk(self.sparse, target, init, self.identity.to(dtype), fit,
                                     self.config.temporal_weight, anchor, solver, self._quick,
                                     self.config.rotation_acceleration)
            elif self.config.mode == "accurate":
                coeffs = fit_landmarks(self.sparse, _cast(_target(found), dtype), fit,
                                       init=init, identity=self.identity, anchor=anchor, quick=self._quick)
            else:
                coeffs = regress_frames(self.regressor, found, dtype)
                coeffs = replace(coeffs, identity=self.identity.expand(len(found), -1).clone())
                if self.config.mode == "refine":
                    fit = replace(fit, warm_steps=self.config.refine_steps)
                    coeffs = fit_landmarks(self.sparse, _cast(_target(found), dtype), fit,
                                           init=coeffs, identity=self.identity, anchor=anchor, quick=self._quick)
            fitted = {f.index: coeffs.select(k) for k, f in enumerate(found)}
            gazes = None
            if self._eyes is not None:
                points = torch.stack([f.points for f in found])
                gazes = dict(zip([f.index for f in found], eye_gaze(self.sparse, self._eyes, coeffs, points)))
        for frame in chunk:
            if frame.index in fitted:
                if self._last is not None:
                    self._earlier = self._last.rotation
                self._last = fitted[frame.index]
                self._gaze = None if gazes is None else gazes[frame.index]
                for early in self._leading:  # leading gaps take the first fitted pose
                    yield TrackedFrame(early.index, early.time, self._last, False, self._gaze)
                self._leading = []
                yield TrackedFrame(frame.index, frame.time, self._last, True, self._gaze)
                continue
            self.gaps.append(frame.index)
            if self._last is None:
                self._leading.append(frame)
            else:
                yield TrackedFrame(frame.index, frame.time, self._last, False, self._gaze)

    def run(self, stream: Iterable[FrameLandmarks]) -> Iterator[TrackedFrame]:
        """Consume ``stream`` lazily and yield fitted frames in order (gaps held)."""
        config = self.config
        stream = iter(stream)
        head: list[FrameLandmarks] = []
        for frame in stream:  # the identity window, extended until a face shows up
            head.append(frame)
            if len(head) >= config.identity_window and any(f.points is not None for f in head):
                break
        with_face = [f for f in head if f.points is not None]
        stride = max(1, len(with_face) // max(config.identity_frames, 1))
        frames = with_face[::stride][:config.identity_frames]
        if config.mode == "accurate":
            self.identity = estimate_identity(self.sparse, frames, config)
        elif not frames:
            raise ValueError("no frame with a face to estimate the identity from")
        else:
            dtype = self.sparse.model.neutral.dtype
            self.identity = regress_frames(self.regressor, frames, dtype).identity.mean(0, keepdim=True)
        pending: list[FrameLandmarks] = []
        for frame in _chain(head, stream):
            pending.append(frame)
            if len(pending) == config.chunk:
                yield from self._fit_chunk(pending)
                pending = []
        if pending:
            yield from self._fit_chunk(pending)


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest
