"""iFacialMocap sender: the UDP text the iFacialMocap iPhone app streams, which VSeeFace, VNyan, Warudo and
VMagicMirror accept ("iFacialMocap" / "iPhone" tracking source).

Layout from the app's developer page (https://www.ifacialmocap.com/for-developer/, the "v1" format), checked
against receivers that read it (VMagicMirror's ``iFacialMocapReceiver``, vpuppr's iFacialMocap backend, the
author's Unity receiver samples). One datagram per frame, ASCII::

    name-value|name-value|...|=head#rx,ry,rz,px,py,pz|rightEye#rx,ry,rz|leftEye#rx,ry,rz|

- blendshapes: Apple's ARKit names with ``_L`` / ``_R`` for ``Left`` / ``Right`` (``eyeBlink_L``,
  ``mouthSmile_R``, ``browInnerUp``; ``jawLeft``, ``jawRight``, ``mouthLeft``, ``mouthRight`` keep their names),
  ``-`` then an integer 0-100 (VMagicMirror parses the value with ``int.TryParse``: no decimals, no sign). The
  app's order is arbitrary; this sender uses ARKit's;
- exactly one ``=``, before ``head#``: rotation as Euler angles in degrees, then position in metres;
- ``rightEye#`` then ``leftEye#``: Euler angles in degrees; every field, the last included, ends with ``|``.
  (The app's "v2", sent only when a receiver asks with ``...|sendDataVersion=v2``, uses ``&`` for ``-``.)

Angles and axes are ARKit's, the iPhone's camera frame: right-handed, x to the camera picture's right, y up,
z towards the camera (the face anchor's and eye transforms' frame): x is the pitch (positive looks down), y the
yaw (positive turns towards +x), z the roll. The published sample packets show it: eyes with ``eyeLookDown``
at 16 carry x = +5.4 degrees, and eyes with ``eyeLookIn_R`` 54 / ``eyeLookOut_L`` 44 (looking to the person's
own left, the picture's right) carry y = +19 / +16. That is :class:`LiveFrame`'s frame, so the head is
``(pitch, yaw, roll)`` of :meth:`LiveFrame.yaw_pitch_roll` in degrees (intrinsic Y-X-Z: receivers rebuild it
with Unity's ``Quaternion.Euler(x, y, z)``, which applies Z, X, Y), the position :attr:`LiveFrame.translation`
(an offset from the calibrated rest: receivers calibrate and use the change), the eyes the gaze's pitch / yaw /
roll in degrees. The app starts streaming when a receiver sends it ``iFacialMocap_sahuasouryya9218...``; the
receivers named above also take a stream that was never asked for, which is what this sender does. (VMagicMirror
drops a packet byte-identical to the previous one as tracking lost: a held pose is, so that is apt.)
"""

from __future__ import annotations

import math

import numpy as np

from facecast.pipelines.live.frame import CHANNELS, LiveFrame
from facecast.pipelines.live.senders.udp import DatagramSender

#: the port iFacialMocap receivers listen on
PORT = 49983
#: channels whose ``Left`` / ``Right`` is the direction itself, not a side of the face
_DIRECTIONS = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")


def ifacialmocap_name(channel: str) -> str:
    """ARKit channel -> the app's name: ``eyeBlinkLeft`` -> ``eyeBlink_L``, ``jawLeft`` -> ``jawLeft``."""
    if channel not in _DIRECTIONS:
        if channel.endswith("Left"):
            return channel[:-4] + "_L"
        if channel.endswith("Right"):
            return channel[:-5] + "_R"
    return channel


def encode(frame: LiveFrame) -> bytes:
    """One frame as the app's ASCII datagram (the module docstring's layout): 52 integer blendshapes 0-100 in
    ARKit order, ``=head#`` pitch, yaw, roll in degrees and x, y, z in metres, then each eye's pitch, yaw, roll."""
    weights = np.rint(np.clip(np.asarray(frame.arkit, dtype=np.float64), 0.0, 1.0) * 100.0).astype(int)
    fields = [f"{ifacialmocap_name(c)}-{w}" for c, w in zip(CHANNELS, weights)]
    yaw, pitch, roll = frame.yaw_pitch_roll()
    head = [math.degrees(pitch), math.degrees(yaw), math.degrees(roll), *np.asarray(frame.translation, float)]
    fields.append("=head#" + _numbers(head))
    gaze = np.degrees(np.asarray(frame.gaze, dtype=np.float64))
    for eye, (e_yaw, e_pitch, e_roll) in (("rightEye", gaze[3:]), ("leftEye", gaze[:3])):
        fields.append(f"{eye}#" + _numbers([e_pitch, e_yaw, e_roll]))
    return ("|".join(fields) + "|").encode("ascii")


class IFacialMocapSender(DatagramSender):
    """Sends each :class:`LiveFrame` to ``host:port`` as one iFacialMocap datagram (:func:`encode`). Never raises
    for an absent receiver: failed datagrams are counted in :attr:`errors`, sent ones in :attr:`datagrams`.
    ``send`` after ``close`` is a no-op; ``close`` may be called twice."""

    name = "ifacialmocap"

    def __init__(self, host: str = "127.0.0.1", port: int = PORT) -> None:
        super().__init__(host, port)

    def send(self, frame: LiveFrame) -> None:
        """Send ``frame`` (also when ``frame.detected`` is False: the held pose)."""
        self.send_datagram(encode(frame))


def _numbers(values: list[float]) -> str:
    # fixed point: no exponent, no locale (receivers parse with float.Parse / to_float)
    return ",".join(f"{float(v):.6f}" for v in values)
