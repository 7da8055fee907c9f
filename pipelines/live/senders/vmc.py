"""VMC protocol sender: OSC over UDP, as VSeeFace, VNyan, Warudo and VMagicMirror receive it.

Layout from the VMC protocol's own specification (sh-akira/VirtualMotionCaptureProtocol,
``docs/marionette-spec.markdown`` and ``docs/specification.markdown``; https://protocol.vmc.info): OSC over
one-way UDP, receivers listen on 39539 by default, data is bundled. Per frame this sender writes

- ``/VMC/Ext/OK (int)loaded (int)calibration state (int)calibration mode (int)tracking status`` (V2.5 / V2.7):
  1, 3 (calibrated), 0 (normal mode), 1 when a face is found else 0. Receivers ignore extra arguments (the
  reference receiver, EVMC4U, ignores unknown addresses and surplus arguments);
- ``/VMC/Ext/T (float)time``: the sender's relative time, here :attr:`LiveFrame.time`;
- ``/VMC/Ext/Root/Pos (string)"root" p.x p.y p.z q.x q.y q.z q.w``: the name is always ``root``. The root's
  rotation is identity; its position is the head's offset from its calibrated rest (``move_root=True``, so the
  whole avatar follows the head as webcam trackers do) or zero (``move_root=False``);
- ``/VMC/Ext/Bone/Pos (string)name p.x p.y p.z q.x q.y q.z q.w``: local transforms named after Unity's
  ``HumanBodyBones``: ``Head`` from :attr:`LiveFrame.rotation`, and with ``eye_bones`` ``LeftEye`` /
  ``RightEye`` from :attr:`LiveFrame.gaze`. Their local positions are sent as zero (this sender knows no
  skeleton; receivers apply bone rotations, and EVMC4U's "bone position synchronize" should be off, as
  iFacialMocap's own VMC sender also advises);
- ``/VMC/Ext/Blend/Val (string)name (float)value`` for every clip, then ``/VMC/Ext/Blend/Apply`` (UniVRM
  accumulates values and applies them at once). Names are case sensitive (the spec warns that only lenient
  receivers ignore case). Perfect sync clips use the ARKit names with a capital first letter
  (``EyeBlinkLeft``, ``JawOpen``: the names hinzka's perfect-sync models, VMagicMirror's and Vear's perfect
  sync define for VRM 0 BlendShapeClips); ``perfect_sync="camel"`` sends Apple's spelling (``eyeBlinkLeft``),
  ``"off"`` none. The VRM presets of :func:`~facecast.pipelines.live.presets.vrm_presets` follow, with VRM 0
  names by default (``Blink``, ``A``, ``Joy``: the spec requires VRM 0 names from every sender, VRM 1 names
  only as an option), ``presets="vrm1"`` for VRM 1 names or ``"off"``.

Coordinates. :class:`LiveFrame` is right-handed: x to the picture's right, y up, z towards the camera. Unity is
left-handed: x right, y up, z forward, and a VRM avatar faces +z, towards the camera that shows it (its own
right hand on +x, which that camera sees on its left). To show the picture as the viewer sees it, the picture's
right must be the avatar camera's right, Unity's -x; up stays up and "towards the camera" stays +z. So points map
by ``M = diag(-1, 1, 1)``: ``(x, y, z) -> (-x, y, z)``. ``M`` is a reflection (determinant -1), which is exactly the
change of handedness; a rotation ``R`` becomes ``M R M``: the same angle about the reflected axis with its sign
flipped (an axial vector), so a quaternion ``(x, y, z, w)`` becomes ``(x, -y, -z, w)``. Checks: a yaw towards the
picture's right (+y in the frame) turns the avatar's +z towards -x, its own left, the avatar camera's right; a
pitch down (+x) is +x in Unity too, turning +z towards -y; a counter-clockwise roll as the camera sees it stays
counter-clockwise for the avatar camera. Eye rotations are built from the gaze's yaw / pitch / roll with the same
intrinsic Y-X-Z order as the head's and mapped the same way. Mirroring is decided before the frame gets here.

Datagrams. python-osc's client sends one datagram per bundle. The blend group is 65 messages of 44-48 bytes
(52 clips, 12 presets, Apply: a 2984-byte bundle, over one Ethernet MTU; python-osc's own server reads at most
8 KB), so messages are packed into bundles of at most ``max_datagram`` bytes (1400 by default: no IP
fragmentation on Ethernet or Wi-Fi) in order, ``/VMC/Ext/Blend/Apply`` last in the last one. A default frame is
a 372-byte pose bundle (OK, T, Root, Head, eyes) then blend bundles of 1368, 1368 and 280 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from facecast.pipelines.live.frame import CHANNELS, LiveFrame
from facecast.pipelines.live.presets import VRM0_NAMES, vrm_presets
from facecast.pipelines.live.senders.udp import DatagramSender

#: the port VMC receivers (VSeeFace, VNyan, Warudo, VMagicMirror) listen on by default
PORT = 39539
#: bundle header: ``#bundle\0`` and an 8-byte time tag; each element then carries a 4-byte size
BUNDLE_HEADER = 16

PerfectSync = Literal["pascal", "camel", "off"]
Presets = Literal["vrm0", "vrm1", "off"]


@dataclass(frozen=True)
class VmcOptions:
    """What a VMC frame contains (see the module docstring): ``perfect_sync`` the ARKit clips' spelling
    (``"pascal"`` ``EyeBlinkLeft``, ``"camel"`` ``eyeBlinkLeft``, ``"off"``); ``presets`` the VRM preset names
    (``"vrm0"`` ``Blink``, ``"vrm1"`` ``blink``, ``"off"``); ``eye_bones`` send ``LeftEye`` / ``RightEye``;
    ``move_root`` put the head's translation on the root; ``max_datagram`` the largest bundle in bytes."""

    perfect_sync: PerfectSync = "pascal"
    presets: Presets = "vrm0"
    eye_bones: bool = True
    move_root: bool = True
    max_datagram: int = 1400

    def __post_init__(self) -> None:
        if self.perfect_sync not in ("pascal", "camel", "off"):
            raise ValueError(f"perfect_sync must be 'pascal', 'camel' or 'off', got {self.perfect_sync!r}")
        if self.presets not in ("vrm0", "vrm1", "off"):
            raise ValueError(f"presets must be 'vrm0', 'vrm1' or 'off', got {self.presets!r}")
        if not 256 <= self.max_datagram <= 65507:
            raise ValueError(f"max_datagram must be in [256, 65507] bytes, got {self.max_datagram}")


def unity_rotation(quaternion: np.ndarray) -> np.ndarray:
    """``(4,)`` xyzw rotation in the live frame's camera frame -> ``(4,)`` xyzw in Unity's: ``(x, -y, -z, w)``."""
    q = np.asarray(quaternion, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"quaternion must have shape (4,), got {q.shape}")
    return np.array([q[0], -q[1], -q[2], q[3]])


def unity_position(position: np.ndarray) -> np.ndarray:
    """``(3,)`` metres in the live frame's camera frame -> ``(3,)`` metres in Unity's: ``(-x, y, z)``."""
    p = np.asarray(position, dtype=np.float64)
    if p.shape != (3,):
        raise ValueError(f"position must have shape (3,), got {p.shape}")
    return np.array([-p[0], p[1], p[2]])


def eye_rotation(yaw_pitch_roll: np.ndarray) -> np.ndarray:
    """``(3,)`` radians (yaw towards +x, pitch down, roll; intrinsic Y-X-Z like the head's) -> ``(4,)`` xyzw in
    the live frame's camera frame."""
    from scipy.spatial.transform import Rotation

    angles = np.asarray(yaw_pitch_roll, dtype=np.float64)
    if angles.shape != (3,):
        raise ValueError(f"yaw_pitch_roll must have shape (3,), got {angles.shape}")
    return Rotation.from_euler("YXZ", angles).as_quat()


def clip_name(channel: str, perfect_sync: PerfectSync) -> str:
    """The perfect-sync BlendShapeClip name of an ARKit channel (``eyeBlinkLeft`` -> ``EyeBlinkLeft``)."""
    return channel[0].upper() + channel[1:] if perfect_sync == "pascal" else channel


def build_messages(frame: LiveFrame, options: VmcOptions) -> list[OscMessage]:
    """The OSC messages of one frame, in order: OK, T, Root, bones, then Blend/Val ... and Blend/Apply last."""
    pose = [
        _message("/VMC/Ext/OK", [(1, "i"), (3, "i"), (0, "i"), (int(frame.detected), "i")]),
        _message("/VMC/Ext/T", [(frame.time, "f")]),
        _transform("/VMC/Ext/Root/Pos", "root", unity_position(frame.translation) if options.move_root
                   else np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0])),
        _transform("/VMC/Ext/Bone/Pos", "Head", np.zeros(3), unity_rotation(frame.rotation)),
    ]
    if options.eye_bones:
        for bone, angles in (("LeftEye", frame.gaze[:3]), ("RightEye", frame.gaze[3:])):
            pose.append(_transform("/VMC/Ext/Bone/Pos", bone, np.zeros(3), unity_rotation(eye_rotation(angles))))
    blend: list[tuple[str, float]] = []
    if options.perfect_sync != "off":
        weights = np.clip(np.asarray(frame.arkit, dtype=np.float64), 0.0, 1.0)
        blend += [(clip_name(c, options.perfect_sync), float(w)) for c, w in zip(CHANNELS, weights)]
    if options.presets != "off":
        names = VRM0_NAMES if options.presets == "vrm0" else {}
        blend += [(names.get(p, p), w) for p, w in vrm_presets(frame.arkit).items()]
    values = [_message("/VMC/Ext/Blend/Val", [(name, "s"), (value, "f")]) for name, value in blend]
    return pose + values + [_message("/VMC/Ext/Blend/Apply", [])]


def pack_bundles(messages: list[OscMessage], max_datagram: int) -> list[OscBundle]:
    """Messages, in order, packed greedily into bundles of at most ``max_datagram`` bytes each (a message too
    big for any bundle travels alone). The pose group and the blend group start separate bundles."""
    groups: list[list[OscMessage]] = [[]]
    size, last_is_blend = BUNDLE_HEADER, False
    for message in messages:
        is_blend = message.address.startswith("/VMC/Ext/Blend")
        if groups[-1] and (is_blend != last_is_blend or size + 4 + message.size > max_datagram):
            groups.append([])
            size = BUNDLE_HEADER
        groups[-1].append(message)
        size, last_is_blend = size + 4 + message.size, is_blend
    bundles = []
    for group in groups:
        builder = OscBundleBuilder(IMMEDIATELY)
        for message in group:
            builder.add_content(message)
        bundles.append(builder.build())
    return bundles


class VmcSender(DatagramSender):
    """Sends each :class:`LiveFrame` as VMC bundles to ``host:port`` (UDP; see the module docstring for what a
    frame contains and the other options, :class:`VmcOptions`). Never raises for an absent receiver: each failed
    datagram is counted in :attr:`errors`; :attr:`datagrams` counts those sent. ``send`` after ``close`` is a
    no-op; ``close`` may be called twice."""

    name = "vmc"

    def __init__(self, host: str = "127.0.0.1", port: int = PORT, *, perfect_sync: PerfectSync = "pascal",
                 presets: Presets = "vrm0", eye_bones: bool = True, move_root: bool = True,
                 max_datagram: int = 1400) -> None:
        super().__init__(host, port)
        self.options = VmcOptions(perfect_sync, presets, eye_bones, move_root, max_datagram)

    def bundles(self, frame: LiveFrame) -> list[OscBundle]:
        """The bundles (one datagram each) that :meth:`send` writes for ``frame``."""
        return pack_bundles(build_messages(frame, self.options), self.options.max_datagram)

    def send(self, frame: LiveFrame) -> None:
        """Send ``frame`` (also when ``frame.detected`` is False: the held pose, tracking status 0)."""
        if self.closed:
            return
        for bundle in self.bundles(frame):
            self.send_datagram(bundle.dgram)


def _message(address: str, args: list[tuple[object, str]]) -> OscMessage:
    builder = OscMessageBuilder(address=address)
    for value, kind in args:
        builder.add_arg(float(value) if kind == "f" else value, kind)
    return builder.build()


def _transform(address: str, name: str, position: np.ndarray, rotation: np.ndarray) -> OscMessage:
    return _message(address, [(name, "s")] + [(float(v), "f") for v in (*position, *rotation)])
