"""The live UDP senders (VMC, iFacialMocap, Live Link Face) against real receivers on 127.0.0.1."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
from live_receivers import UdpReceiver, VmcReceiver, parse_ifacialmocap, parse_livelink
from scipy.spatial.transform import Rotation

from facecast.pipelines.live.frame import CHANNELS, LiveFrame
from facecast.pipelines.live.presets import VRM0_NAMES, vrm_presets
from facecast.pipelines.live.senders.ifacialmocap import IFacialMocapSender
from facecast.pipelines.live.senders.livelink import LiveLinkFaceSender
from facecast.pipelines.live.senders.vmc import VmcSender

YAW, PITCH = math.radians(20.0), math.radians(10.0)  # face towards the picture's right, tipped down
EYE_YAW, EYE_PITCH = 0.15, 0.05


def make_frame(index: int, *, detected: bool = True, smile: float = 0.3) -> LiveFrame:
    """jawOpen 0.7, eyeBlinkLeft 1.0, mouthSmile ``smile``; head yaw +20°, pitch +10°; both eyes 0.15 / 0.05 rad."""
    arkit = np.zeros(len(CHANNELS))
    for name, value in (("jawOpen", 0.7), ("eyeBlinkLeft", 1.0), ("mouthSmileLeft", smile),
                        ("mouthSmileRight", smile), ("browInnerUp", 0.25)):
        arkit[CHANNELS.index(name)] = value
    rotation = Rotation.from_euler("YXZ", [YAW, PITCH, 0.0]).as_quat()
    gaze = np.array([EYE_YAW, EYE_PITCH, 0.0, EYE_YAW, EYE_PITCH, 0.0])
    return LiveFrame(index=index, time=index / 30.0, decoded=0.0, detected=detected, arkit=arkit,
                     rotation=rotation, translation=np.array([0.02, -0.01, 0.03]), gaze=gaze)


FRAMES = [make_frame(0), make_frame(1, smile=0.6), make_frame(2, detected=False)]


def rotate(quaternion: tuple[float, ...], vector: tuple[float, float, float]) -> np.ndarray:
    """Rotate ``vector`` by an xyzw quaternion, written out (no library, no convention assumed)."""
    x, y, z, w = quaternion
    q = np.array([x, y, z])
    v = np.asarray(vector, dtype=float)
    return v + 2.0 * np.cross(q, np.cross(q, v) + w * v)


def frames_of(messages: list[tuple[str, tuple]]) -> list[list[tuple[str, tuple]]]:
    """Messages split into frames, each starting at ``/VMC/Ext/OK``."""
    frames: list[list[tuple[str, tuple]]] = []
    for message in messages:
        if message[0] == "/VMC/Ext/OK":
            frames.append([])
        frames[-1].append(message)
    return frames


def test_vmc_frames_reach_an_osc_server():
    with VmcReceiver() as receiver:
        sender = VmcSender("127.0.0.1", receiver.port)
        for frame in FRAMES:
            sender.send(frame)
        messages = receiver.wait("/VMC/Ext/Blend/Apply", len(FRAMES))
        sender.close()
    assert sender.errors == 0
    packets = receiver.packets
    assert len(packets) == 4 * len(FRAMES)  # a pose bundle and three blend bundles a frame
    assert all(len(p) > 0 for p in packets)  # every datagram parsed by the OSC server
    frames = frames_of(messages)
    assert len(frames) == len(FRAMES)
    for frame, got in zip(FRAMES, frames):
        addresses = [a for a, _ in got]
        blend = [i for i, a in enumerate(addresses) if a.startswith("/VMC/Ext/Blend")]
        assert addresses[blend[-1]] == "/VMC/Ext/Blend/Apply" and addresses.count("/VMC/Ext/Blend/Apply") == 1
        assert blend == list(range(blend[0], len(addresses)))  # the blend group closes the frame, Apply last
        values = {args[0]: args[1] for a, args in got if a == "/VMC/Ext/Blend/Val"}
        for channel in CHANNELS:  # perfect sync: every ARKit channel, capitalised
            assert values[channel[0].upper() + channel[1:]] == pytest.approx(frame.weight(channel), abs=1e-6)
        assert values["JawOpen"] == pytest.approx(0.7, abs=1e-6) and values["EyeBlinkLeft"] == 1.0
        for preset, weight in vrm_presets(frame.arkit).items():  # VRM 0 presets
            assert values[VRM0_NAMES[preset]] == pytest.approx(weight, abs=1e-6)
        assert values["A"] == pytest.approx(0.7, abs=1e-6) and values["Blink_L"] == pytest.approx(1.0)

        ok = next(args for a, args in got if a == "/VMC/Ext/OK")
        assert ok == (1, 3, 0, int(frame.detected))
        assert next(args for a, args in got if a == "/VMC/Ext/T")[0] == pytest.approx(frame.time, abs=1e-6)
        root = next(args for a, args in got if a == "/VMC/Ext/Root/Pos")
        assert root[0] == "root" and root[1:4] == pytest.approx((-0.02, -0.01, 0.03), abs=1e-6)
        bones = {args[0]: args[1:] for a, args in got if a == "/VMC/Ext/Bone/Pos"}
        assert set(bones) == {"Head", "LeftEye", "RightEye"}
        # Unity: the avatar faces +z towards its camera, whose right is -x. Turned 20° to the picture's right and
        # tipped 10° down, the face's forward is (-sin20 cos10, -sin10, cos20 cos10).
        forward = rotate(bones["Head"][3:], (0.0, 0.0, 1.0))
        expected = (-math.sin(YAW) * math.cos(PITCH), -math.sin(PITCH), math.cos(YAW) * math.cos(PITCH))
        assert forward == pytest.approx(expected, abs=1e-5)
        eye = rotate(bones["LeftEye"][3:], (0.0, 0.0, 1.0))
        assert eye[0] < 0 and eye[1] < 0  # looking towards the picture's right and down
        assert math.degrees(math.asin(-eye[1])) == pytest.approx(math.degrees(EYE_PITCH), abs=1e-3)


def test_vmc_options_and_datagram_sizes():
    sender = VmcSender(perfect_sync="camel", presets="vrm1", eye_bones=False, move_root=False)
    bundles = sender.bundles(FRAMES[0])
    sender.close()
    assert all(b.size <= 1400 for b in bundles)
    names = [m.params[0] for b in bundles for m in b if m.address == "/VMC/Ext/Blend/Val"]
    assert "eyeBlinkLeft" in names and "blink" in names and "aa" in names and "Blink" not in names
    bones = [m.params[0] for b in bundles for m in b if m.address == "/VMC/Ext/Bone/Pos"]
    assert bones == ["Head"]
    root = next(m for b in bundles for m in b if m.address == "/VMC/Ext/Root/Pos")
    assert root.params[1:4] == [0.0, 0.0, 0.0]
    single = VmcSender(max_datagram=65507)
    assert len(single.bundles(FRAMES[0])) == 2  # pose, then all 65 blend messages with Apply
    single.close()
    with pytest.raises(ValueError):
        VmcSender(perfect_sync="upper")


def test_ifacialmocap_packets_parse_with_values():
    with UdpReceiver() as receiver:
        sender = IFacialMocapSender("127.0.0.1", receiver.port)
        for frame in FRAMES:
            sender.send(frame)
        datagrams = receiver.wait(len(FRAMES))
        sender.close()
    assert sender.errors == 0 and len(datagrams) == len(FRAMES)
    for frame, data in zip(FRAMES, datagrams):
        packet = parse_ifacialmocap(data.decode("ascii"))
        assert len(packet.blendshapes) == 52
        assert packet.blendshapes["jawOpen"] == 70 and packet.blendshapes["eyeBlink_L"] == 100
        assert packet.blendshapes["eyeBlink_R"] == 0 and packet.blendshapes["browInnerUp"] == 25
        smile = round(frame.weight("mouthSmileLeft") * 100)
        assert packet.blendshapes["mouthSmile_L"] == smile and packet.blendshapes["mouthSmile_R"] == smile
        assert {"jawLeft", "mouthRight", "cheekPuff", "tongueOut", "noseSneer_R"} <= set(packet.blendshapes)
        # ARKit's camera frame, degrees: x pitch (down +), y yaw (towards the picture's right +), z roll
        assert packet.head[:3] == pytest.approx((10.0, 20.0, 0.0), abs=1e-4)
        assert packet.head[3:] == pytest.approx((0.02, -0.01, 0.03), abs=1e-6)
        for eye in (packet.left_eye, packet.right_eye):
            assert eye == pytest.approx((math.degrees(EYE_PITCH), math.degrees(EYE_YAW), 0.0), abs=1e-4)


def test_livelink_packets_parse_with_values():
    with UdpReceiver() as receiver:
        sender = LiveLinkFaceSender("127.0.0.1", receiver.port, subject="facecast-test", rate=60)
        for frame in FRAMES:
            sender.send(frame)
        datagrams = receiver.wait(len(FRAMES))
        sender.close()
    assert sender.errors == 0 and len(datagrams) == len(FRAMES)
    for frame, data in zip(FRAMES, datagrams):
        packet = parse_livelink(data)
        assert packet.version == 6 and packet.subject == "facecast-test" and len(packet.device_id) == 36
        assert (packet.rate_numerator, packet.rate_denominator) == (60, 1)
        assert packet.frame_number == frame.index * 2 and 0.0 <= packet.subframe < 1.0  # 30 fps source at 60
        values = packet.values
        assert values[CHANNELS.index("jawOpen")] == pytest.approx(0.7, abs=1e-6)
        assert values[CHANNELS.index("eyeBlinkLeft")] == 1.0 and values[CHANNELS.index("eyeBlinkRight")] == 0.0
        # radians; yaw positive towards the "Right" side (the picture's left), pitch positive down
        head_yaw, head_pitch, head_roll = values[52:55]
        assert (head_yaw, head_pitch, head_roll) == pytest.approx((-YAW, PITCH, 0.0), abs=1e-5)
        for eye in (values[55:58], values[58:61]):
            assert eye == pytest.approx((-EYE_YAW, EYE_PITCH, 0.0), abs=1e-5)
    assert len(datagrams[0]) == 1 + 4 + 36 + 4 + len("facecast-test") + 16 + 1 + 61 * 4


def free_udp_port() -> int:
    """A port nobody listens on (bound, read and released)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.mark.parametrize("make", [VmcSender, IFacialMocapSender, LiveLinkFaceSender])
def test_sender_without_listener_keeps_running(make):
    sender = make("127.0.0.1", free_udp_port())
    for index in range(50):
        sender.send(make_frame(index, detected=index % 2 == 0))
    assert sender.errors + sender.datagrams >= 50
    sender.close()
    sender.close()
    sender.send(FRAMES[0])  # after close: nothing, no error
