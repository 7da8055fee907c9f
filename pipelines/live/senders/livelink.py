"""Live Link Face sender: the UDP packet Epic's Live Link Face iPhone app streams to Unreal Engine (Live Link
source "Apple ARKit Face", port 11111).

Layout (packet version 6), from Unreal Engine's reader and writer, ``FAppleARKitLiveLinkRemoteListener::Tick``
and ``FAppleARKitLiveLinkRemotePublisher::PublishBlendShapes`` in
``Engine/Plugins/Runtime/AR/AppleAR/AppleARKitFaceSupport/Source/AppleARKitFaceSupport/Private/
AppleARKitLiveLinkSource.cpp`` (``FNboSerializeToBuffer``: network byte order, strings as an int32 byte count
then the bytes, no terminator), as captured from the app and decoded by aelzeiny/Animoji (``livelink.py``) and
JimWest/PyLiveLinkFace. All big-endian:

=========================  =====================================================================
uint8                      packet version, 6
int32 + bytes              device id (the app sends a UUID string; Unreal tells sources apart by it)
int32 + bytes              subject name (the Live Link subject shown in Unreal)
int32, float32             frame time: frame number, subframe in [0, 1)
int32, int32               frame rate: numerator, denominator (60 / 1 by default)
uint8                      value count, 61 (``EARFaceBlendShape::MAX``; Unreal drops other counts)
61 x float32               the 52 ARKit blendshapes in ARKit order (``ARKIT_52``), then HeadYaw,
                           HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw,
                           RightEyePitch, RightEyeRoll
=========================  =====================================================================

A packet with the default subject is 314 bytes. The 9 angles are radians: packets captured from the app carry
eye pitch 0.30 with ``eyeLookDown`` 0.5 (17 degrees; the ±180° -> ±1 mapping of Unreal's 2019
``AppleARKitConversion.h`` would make that 55), and senders that drive MetaHumans through Live Link
(MEFAMO / PyLiveLinkFace, which sends ``transforms3d`` Euler angles) send radians. Signs follow Unreal's
conversion of the ARKit face and eye transforms to ``FRotator`` (``ToBlendShapeMap``, same file family):
pitch is positive looking down (head and eyes alike; the captured eyes confirm it), yaw is positive towards the
face's side whose blendshapes are called ``Right`` and roll positive tipping the top of the head towards the
``Left`` side, whether the app mirrors (and so swaps ``Left`` / ``Right``) or not. facecast's ``...Left`` side is
+x (the person's own left is the picture's right), so ``HeadYaw = -yaw``, ``HeadPitch = pitch``, ``HeadRoll =
-roll`` of :meth:`LiveFrame.yaw_pitch_roll`, and each eye likewise from :attr:`LiveFrame.gaze` (left eye first).

The frame time is :attr:`LiveFrame.time` at the configured rate: frame number ``floor(time * rate)`` and the
fraction left as the subframe.
"""

from __future__ import annotations

import math
import struct
import uuid

import numpy as np

from facecast.pipelines.live.frame import CHANNELS, LiveFrame
from facecast.pipelines.live.senders.udp import DatagramSender

#: the port Unreal's Live Link Face source listens on
PORT = 11111
#: the packet version the app writes (6: device id, subject, qualified frame time)
VERSION = 6
#: 52 ARKit blendshapes + head and eye yaw / pitch / roll: 61
VALUE_COUNT = len(CHANNELS) + 9


def head_and_eye_angles(frame: LiveFrame) -> np.ndarray:
    """``(9,)`` radians in Live Link Face's convention (module docstring): HeadYaw, HeadPitch, HeadRoll, then
    the left and the right eye's yaw, pitch, roll."""
    yaw, pitch, roll = frame.yaw_pitch_roll()
    gaze = np.asarray(frame.gaze, dtype=np.float64).reshape(2, 3)
    eyes = [(-e_yaw, e_pitch, -e_roll) for e_yaw, e_pitch, e_roll in gaze]
    return np.array([-yaw, pitch, -roll, *eyes[0], *eyes[1]], dtype=np.float64)


def frame_time(seconds: float, rate: int, rate_denominator: int = 1) -> tuple[int, float]:
    """``(frame number, subframe in [0, 1))`` of ``seconds`` at ``rate / rate_denominator`` frames a second
    (negative times count as 0)."""
    frames = max(float(seconds), 0.0) * rate / rate_denominator
    number = math.floor(frames)
    return number, frames - number


def encode(frame: LiveFrame, subject: str, device_id: str, rate: int = 60, rate_denominator: int = 1) -> bytes:
    """One frame as a version-6 Live Link Face packet (module docstring's layout)."""
    number, subframe = frame_time(frame.time, rate, rate_denominator)
    values = np.concatenate([np.clip(np.asarray(frame.arkit, dtype=np.float64), 0.0, 1.0),
                             head_and_eye_angles(frame)])
    return b"".join([
        struct.pack(">B", VERSION), _string(device_id), _string(subject),
        struct.pack(">ifii", number, subframe, rate, rate_denominator),
        struct.pack(f">B{VALUE_COUNT}f", VALUE_COUNT, *values),
    ])


class LiveLinkFaceSender(DatagramSender):
    """Sends each :class:`LiveFrame` to ``host:port`` as one Live Link Face packet (:func:`encode`) for the
    Live Link ``subject``; ``device_id`` defaults to a UUID derived from the subject (stable across runs, so
    Unreal keeps its source); the frame time counts :attr:`LiveFrame.time` at ``rate / rate_denominator``.
    Never raises for an absent receiver: failed datagrams are counted in :attr:`errors`, sent ones in
    :attr:`datagrams`. ``send`` after ``close`` is a no-op; ``close`` may be called twice."""

    name = "livelink"

    def __init__(self, host: str = "127.0.0.1", port: int = PORT, subject: str = "facecast",
                 device_id: str | None = None, rate: int = 60, rate_denominator: int = 1) -> None:
        if device_id is None:
            device_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"facecast:livelink:{subject}")).upper()
        for label, text in (("subject", subject), ("device_id", device_id)):
            if not text or len(text.encode("utf-8")) > 255:
                raise ValueError(f"{label} must be 1-255 bytes of UTF-8, got {text!r}")
        if rate < 1 or rate_denominator < 1:
            raise ValueError(f"rate must be positive, got {rate}/{rate_denominator}")
        super().__init__(host, port)
        self.subject, self.device_id = subject, device_id
        self.rate, self.rate_denominator = rate, rate_denominator

    def send(self, frame: LiveFrame) -> None:
        """Send ``frame`` (also when ``frame.detected`` is False: the held pose)."""
        self.send_datagram(encode(frame, self.subject, self.device_id, self.rate, self.rate_denominator))


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">i", len(data)) + data
