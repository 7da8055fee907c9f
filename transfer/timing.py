"""Driver frame timing: check frame times against the declared rate, resample when they disagree.

Phones record variable-frame-rate video: frames arrive 30-40 ms apart while the container
declares, say, 30 fps. Every output format here (GLB samplers, Live Link timecodes, PC2)
assumes one frame every ``1 / fps`` s, so an animation built from frame indices would drift
from the audio and the footage. :func:`frame_timing` measures the drift; :func:`resample`
puts the tracked channels on a uniform grid at the declared rate from the real frame times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: largest drift (in frames) of a frame from ``t0 + k / fps`` that still counts as uniform
TOLERANCE_FRAMES = 0.25
#: seconds: a jump between two frames longer than this (and than 10 frames) is a break in the timestamps
#: (a camera restarted, a broken muxer), not footage: it is closed up to one frame, so that resampling
#: cannot blow a few frames up into hours of output
MAX_GAP_S = 2.0


@dataclass(frozen=True)
class FrameTiming:
    """times ``(T,)`` s (first frame at 0, timestamp breaks closed up), the declared ``fps``, the largest drift
    (s), and ``breaks``: ``(frame, seconds)`` of each jump closed up (see :data:`MAX_GAP_S`)."""

    times: np.ndarray
    fps: float
    max_drift: float
    breaks: tuple[tuple[int, float], ...] = ()

    @property
    def is_uniform(self) -> bool:
        return self.max_drift <= TOLERANCE_FRAMES / self.fps

    def describe(self, source: str) -> str:
        span = self.times[-1] if len(self.times) else 0.0
        text = (f"{source}: frame times drift up to {1000 * self.max_drift:.0f} ms from the declared "
                f"{self.fps:g} fps ({len(self.times)} frames over {span:.2f} s, variable frame rate)")
        if self.breaks:
            jumps = ", ".join(f"{seconds:.1f} s before frame {frame}" for frame, seconds in self.breaks[:3])
            text += f"; timestamp jumps closed up: {jumps}{' ...' if len(self.breaks) > 3 else ''}"
        return text


def frame_timing(times, fps: float, source: str = "driver") -> FrameTiming:
    """Check frame ``times`` ``(T,)`` (seconds) against ``fps``; ``ValueError`` naming ``source`` if unusable."""
    stamps = np.asarray(times, dtype=np.float64)
    if stamps.ndim != 1 or len(stamps) == 0:
        raise ValueError(f"{source}: need a (T,) array of frame times, got shape {stamps.shape}")
    if not fps > 0 or not np.isfinite(fps):
        raise ValueError(f"{source}: the frame rate must be a positive number, got {fps}")
    if not np.isfinite(stamps).all() or (np.diff(stamps) <= 0).any():
        bad = int(np.flatnonzero(~(np.diff(stamps) > 0))[0]) + 1 if len(stamps) > 1 else 0
        raise ValueError(f"{source}: frame times must increase strictly (frame {bad} does not)")
    steps = np.diff(stamps)
    broken = np.flatnonzero(steps > max(MAX_GAP_S, 10.0 / fps))
    breaks = tuple((int(k) + 1, float(steps[k])) for k in broken)
    steps[broken] = 1.0 / fps
    stamps = np.concatenate([[0.0], np.cumsum(steps)])
    drift = float(np.abs(stamps - np.arange(len(stamps)) / fps).max())
    if breaks:  # a closed-up break is never uniform: the user hears about it
        drift = max(drift, TOLERANCE_FRAMES / fps + 1e-9)
    return FrameTiming(stamps, float(fps), drift, breaks)


def resample(timing: FrameTiming, values: np.ndarray) -> np.ndarray:
    """``values`` ``(T, C)`` at ``timing.times`` -> ``(T', C)`` at ``k / fps`` over the same span (linear).

    Rotations given as axis-angle vectors interpolate well this way between neighbouring
    frames (a few degrees apart); the span is ``floor(times[-1] * fps) + 1`` frames.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(timing.times):
        raise ValueError(f"values must have shape ({len(timing.times)}, C), got {values.shape}")
    grid = np.arange(int(np.floor(timing.times[-1] * timing.fps + 1e-9)) + 1) / timing.fps
    return np.stack([np.interp(grid, timing.times, column) for column in values.T], axis=1)
