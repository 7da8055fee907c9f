"""What live mode produces per camera frame, and what every sender takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facecast.recon.model.arkit import ARKIT_52

#: the order of :attr:`LiveFrame.arkit`
CHANNELS: tuple[str, ...] = ARKIT_52


@dataclass(frozen=True)
class LiveFrame:
    """One tracked frame, as sent.

    index: the source's frame number; time: its time in the source, seconds; decoded: the
    ``time.perf_counter()`` at which the frame was decoded (latency is measured from it);
    detected: a face was found (else the last pose is held, and ``arkit`` decays to rest).
    arkit: ``(52,)`` ARKit weights in [0, 1] in :data:`CHANNELS` order (after calibration and the
    user's profile); ``tongueOut`` is 0 (the tracker does not see the tongue).
    rotation: ``(4,)`` xyzw unit quaternion, the head's rotation relative to its calibrated rest, in the
    camera frame as the viewer sees it (x to the right of the picture, y up, z towards the camera):
    a positive turn about +y turns the face towards the picture's right.
    translation: ``(3,)`` metres, the head's offset from its calibrated rest position, same frame.
    gaze: ``(6,)`` radians, left eye yaw / pitch / roll then right eye, relative to the head (0 when
    gaze is off or the irises are not seen); yaw towards +x and pitch down are positive.
    image: the camera picture, ``(H, W, 3)`` uint8 RGB, possibly downscaled (for the viewer), or None.
    """

    index: int
    time: float
    decoded: float
    detected: bool
    arkit: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    gaze: np.ndarray = field(default_factory=lambda: np.zeros(6))
    image: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name, shape in (("arkit", (len(CHANNELS),)), ("rotation", (4,)), ("translation", (3,)),
                            ("gaze", (6,))):
            value = getattr(self, name)
            if np.shape(value) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {np.shape(value)}")
        if self.image is not None and (self.image.ndim != 3 or self.image.shape[2] != 3):
            raise ValueError(f"image must be (H, W, 3), got {self.image.shape}")

    def yaw_pitch_roll(self) -> np.ndarray:
        """``(3,)`` radians: intrinsic Y-X-Z angles of :attr:`rotation` (positive yaw turns the face towards
        the picture's right, positive pitch tips it down, positive roll turns it counter-clockwise as the
        camera sees it): the convention of :func:`facecast.pipelines.export.coefficients.yaw_pitch_roll`."""
        from scipy.spatial.transform import Rotation

        return Rotation.from_quat(self.rotation).as_euler("YXZ")

    def weight(self, name: str) -> float:
        """The ARKit weight called ``name`` (``KeyError`` for an unknown one)."""
        if name not in CHANNELS:
            raise KeyError(name)
        return float(self.arkit[CHANNELS.index(name)])


class SenderError(OSError):
    """A sender cannot start (its port is taken, its address does not resolve); the message says which
    option to change, in one line."""


class Sender(Protocol):
    """Sends live frames somewhere (a UDP port, a WebSocket's clients). ``send`` never blocks on a
    receiver and never raises because one is absent; ``close`` frees the socket."""

    name: str

    def send(self, frame: LiveFrame) -> None: ...

    def close(self) -> None: ...
