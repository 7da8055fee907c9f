"""Live tracking: source frames -> :class:`~facecast.pipelines.live.frame.LiveFrame`, one by one.

Per frame: MediaPipe's face mesh (tracking between frames), the trained regressor (``fast``; ``refine``
adds a few fit steps), the causal retargeter (mirror, One Euro smoothing with a preset, eye channels on
or off), the 53 channels as ARKit's 52, the gaze from the irises, then the user's profile
(:mod:`~facecast.pipelines.live.profile`). With ``calibrate`` seconds, the first seconds with a face
measure the neutral face and rest pose (frames are sent uncalibrated meanwhile); the profile in use
after that is :attr:`LiveTracker.profile`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facecast.pipelines.commands.track import VideoFit, landmark_stream
from facecast.pipelines.commands.track_config import TrackJobConfig
from facecast.pipelines.live.frame import LiveFrame
from facecast.pipelines.live.profile import Profile, calibrated
from facecast.pipelines.live.sources import LiveSource, SourceFrame
from facecast.pipelines.media import Frame
from facecast.pipelines.progress import StageClock
from facecast.recon.fit.tracking import TrackConfig, TrackedFrame
from facecast.recon.model.arkit import arkit_matrix
from facecast.transfer.filters import OneEuroConfig, OneEuroFilter
from facecast.transfer.retarget import DriverFrame, LiveRetargeter, RetargetConfig
from facecast.transfer.rigs import IctRig

#: One Euro settings of the smoothing presets: ``min_cutoff`` Hz at rest (lower: steadier, laggier) and
#: ``beta`` (higher: follows fast moves sooner)
SMOOTHING: dict[str, OneEuroConfig | None] = {
    "responsive": OneEuroConfig(min_cutoff=3.0, beta=1.0), "balanced": OneEuroConfig(min_cutoff=1.5, beta=0.5),
    "smooth": OneEuroConfig(min_cutoff=0.7, beta=0.2), "none": None}
MODES = ("fast", "refine")


@dataclass(frozen=True)
class LiveConfig:
    """Options of live tracking (see the module doc).

    image_width: attach the camera picture, downscaled to at most this width, to every frame (the web
    viewer shows it); None attaches nothing.
    """

    mode: str = "fast"
    smoothing: str = "balanced"
    mirror: bool = False
    gaze: bool = True
    calibrate: float = 0.0
    profile: Profile = field(default_factory=Profile)
    image_width: int | None = None
    face_index: int = 0
    regressor: str | Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be fast or refine, got {self.mode!r}")
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING)}, got {self.smoothing!r}")
        if not self.calibrate >= 0:
            raise ValueError(f"calibrate must be >= 0 seconds, got {self.calibrate}")


def _mirror_gaze(gaze: np.ndarray) -> np.ndarray:
    """Left and right eyes swapped, yaw and roll negated (a reflection in the x = 0 plane)."""
    out = np.concatenate([gaze[3:], gaze[:3]])
    out[[0, 2, 3, 5]] *= -1.0
    return out


class LiveTracker:
    """Tracks a :class:`~facecast.pipelines.live.sources.LiveSource` frame by frame (:meth:`frames`).

    last_tracked / last_rgb: the :class:`~facecast.recon.fit.tracking.TrackedFrame` and the full picture
    behind the last LiveFrame (what a recording stores); profile: the profile in use (calibrated once calibration ends);
    calibrating: True while the calibration window runs.
    """

    def __init__(self, model, config: LiveConfig = LiveConfig()) -> None:
        self.model, self.config = model, config
        tracking = TrackConfig(mode=config.mode, chunk=1, identity_window=1, identity_frames=1)
        self.job = TrackJobConfig(tracking=tracking, regressor=config.regressor, face_index=config.face_index)
        self.fit = VideoFit.build(model, self.job)
        smoothing = SMOOTHING[config.smoothing]
        retarget = RetargetConfig(neutral="none", smoothing="none" if smoothing is None else "one_euro",
                                  one_euro=smoothing or OneEuroConfig(), mirror=config.mirror,
                                  eye_gaze=config.gaze, rotation=True, translation=True)
        self._retargeter = LiveRetargeter(IctRig(np.zeros(100)), retarget)
        self._gaze_filter = None if smoothing is None else OneEuroFilter(smoothing)
        self._to_arkit = arkit_matrix(list(model.expression_names))
        self.profile = config.profile
        self.calibrating = config.calibrate > 0
        self._calibration: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._calibration_start: float | None = None
        self.last_tracked: TrackedFrame | None = None
        self.last_rgb: np.ndarray | None = None
        self.clock = StageClock()

    def _calibrate(self, frame: LiveFrame) -> None:
        if not self.calibrating or not frame.detected:
            return
        if self._calibration_start is None:
            self._calibration_start = frame.time
        self._calibration.append((frame.arkit, frame.rotation, frame.translation))
        # the window spans calibrate seconds and at least 10 frames a second of it (frames the source dropped
        # while the detector warmed up do not count)
        if frame.time - self._calibration_start >= self.config.calibrate \
                and len(self._calibration) >= 10 * self.config.calibrate:
            arkit, rotations, translations = (np.stack(parts) for parts in zip(*self._calibration))
            self.profile = calibrated(self.profile, arkit, rotations, translations)
            self.calibrating = False

    def _image(self, rgb: np.ndarray) -> np.ndarray | None:
        width = self.config.image_width
        if width is None:
            return None
        if rgb.shape[1] <= width:
            return rgb
        import cv2

        scale = width / rgb.shape[1]
        return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

    def _live_frame(self, tracked: TrackedFrame, source: SourceFrame) -> LiveFrame:
        coeffs = tracked.coeffs
        weights = coeffs.expression[0].detach().cpu().numpy().astype(np.float64)
        rotation = coeffs.rotation[0].detach().cpu().numpy().astype(np.float64)
        translation = coeffs.translation[0].detach().cpu().numpy().astype(np.float64)
        out = self._retargeter.push(DriverFrame(tracked.time, weights, rotation, translation))
        arkit = np.clip(self._to_arkit @ out.weights[0], 0.0, 1.0)
        gaze = np.zeros(6) if tracked.gaze is None or not self.config.gaze else np.asarray(tracked.gaze, float)
        if self.config.mirror:
            gaze = _mirror_gaze(gaze)
        if self._gaze_filter is not None:
            gaze = self._gaze_filter(tracked.time, gaze)
        raw = LiveFrame(tracked.index, tracked.time, source.decoded, tracked.detected, arkit, out.rotation,
                        out.translation, gaze, self._image(source.rgb))
        self._calibrate(raw)
        if self.calibrating:
            return raw
        rotation_out, translation_out = self.profile.pose(raw.rotation, raw.translation)
        return replace(raw, arkit=self.profile.shape(raw.arkit), rotation=rotation_out, translation=translation_out)

    def frames(self, source: LiveSource) -> Iterator[LiveFrame]:
        """Live frames for ``source``'s frames, as they come (frames the source dropped are skipped)."""
        from facecast.recon.landmarks.mediapipe_mesh import MediaPipeConfig, MediaPipeDetector

        pending: dict[int, SourceFrame] = {}
        keep: deque = deque()

        def decoded() -> Iterator[tuple[Frame, None, float]]:
            for item in source.frames():
                pending[item.index] = item
                yield Frame(item.index, item.time, item.rgb), None, 1.0

        config = MediaPipeConfig(max_num_faces=max(1, self.config.face_index + 1))
        with MediaPipeDetector(config) as detector:
            stream = landmark_stream(decoded(), detector, self.job, self.fit.weight, keep, self.clock,
                                     self.fit.tracker.crop_geometry)
            for tracked in self.fit.tracker.run(stream):
                keep.clear()
                item = pending.pop(tracked.index, None)
                for old in [k for k in pending if k < tracked.index]:
                    del pending[old]
                if item is None:  # a leading frame without a face, long gone
                    continue
                start = time.perf_counter()
                frame = self._live_frame(tracked, item)
                self.clock.add("retarget", time.perf_counter() - start)
                self.last_tracked, self.last_rgb = tracked, item.rgb
                yield frame


