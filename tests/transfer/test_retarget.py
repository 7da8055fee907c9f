"""Retargeting: calibration, gain/clamp, mirroring, gaze gating, head pose transfer, the
offline and live paths against each other, and zero-phase smoothing without lag."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facecast.transfer.filters import OneEuroConfig, ZeroPhaseConfig
from facecast.transfer.retarget import (
    DriverFrame,
    LiveRetargeter,
    RetargetConfig,
    mirror_permutation,
    retarget,
    stack_frames,
)
from facecast.transfer.rigs import IctRig, NodePose, RigMesh, channel_names

CHANNELS = channel_names()
FPS = 30.0
PLAIN = RetargetConfig(neutral="none", smoothing="none")


@dataclass(frozen=True)
class PoseRig:
    """Channels pass through; the head node has a rest pose and faces ``facing``."""

    head_pose: NodePose = field(default_factory=NodePose)
    facing: str = "+z"
    head_node: int | None = 4
    meshes = (RigMesh(0, CHANNELS),)

    def evaluate(self, weights):
        return (np.asarray(weights).copy(),)


ICT = IctRig(np.zeros(100))


def _ch(name: str) -> int:
    return CHANNELS.index(name)


def _clip(frames: int = 60, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.9, (frames, 53))


def _weights(animation) -> np.ndarray:
    (track,) = animation.morphs
    return track.weights


def test_frame_calibration_subtracts_the_neutral():
    weights = _clip(10)
    neutral = weights[2]
    out = _weights(retarget(weights, None, None, FPS, ICT, RetargetConfig(neutral="frame", neutral_frame=2,
                                                                         smoothing="none")))
    np.testing.assert_allclose(out[2], 0.0)
    np.testing.assert_allclose(out, np.clip((weights - neutral) / (1 - neutral), 0, 1))
    raw = _weights(retarget(weights, None, None, FPS, ICT, RetargetConfig(
        neutral="frame", neutral_frame=2, smoothing="none", rescale=False)))
    np.testing.assert_allclose(raw, np.clip(weights - neutral, 0, 1))


def test_percentile_calibration_removes_a_resting_offset():
    weights = np.full((100, 53), 0.2)
    weights[40:60, _ch("jawOpen")] = 0.6                      # the mouth opens for 20 frames
    out = _weights(retarget(weights, None, None, FPS, ICT, RetargetConfig(neutral="percentile", smoothing="none")))
    np.testing.assert_allclose(np.delete(out, _ch("jawOpen"), axis=1), 0.0)
    np.testing.assert_allclose(out[50, _ch("jawOpen")], 0.4 / 0.8)
    np.testing.assert_allclose(out[:40, _ch("jawOpen")], 0.0)


def test_gain_and_clamp_by_arkit_and_channel_name():
    weights = np.full((3, 53), 0.4)
    config = RetargetConfig(neutral="none", smoothing="none", gain={"jawOpen": 2.0, "browInnerUp": 0.5,
                                                                   "browInnerUpRight": 1.5},
                            clamp={"jawOpen": (0.0, 0.7), "cheekPuff": (0.0, 0.1)})
    out = _weights(retarget(weights, None, None, FPS, ICT, config))[0]
    assert out[_ch("jawOpen")] == pytest.approx(0.7)           # 0.8 clamped
    assert out[_ch("browInnerUpLeft")] == pytest.approx(0.2)   # ARKit name: both halves ...
    assert out[_ch("browInnerUpRight")] == pytest.approx(0.6)  # ... unless the half is named
    assert out[_ch("cheekPuffLeft")] == out[_ch("cheekPuffRight")] == pytest.approx(0.1)
    assert out[_ch("mouthClose")] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="gain names unknown channels \\['jawopen'\\]"):
        RetargetConfig(gain={"jawopen": 2.0})
    with pytest.raises(ValueError, match="low 0.5 > high 0.1"):
        RetargetConfig(clamp={"jawOpen": (0.5, 0.1)})


def test_mirror_swaps_left_and_right_and_reflects_the_pose():
    weights = np.zeros((1, 53))
    weights[0, _ch("eyeBlinkLeft")], weights[0, _ch("mouthLeft")], weights[0, _ch("jawOpen")] = 0.9, 0.5, 0.3
    rotation, translation = np.array([[0.1, 0.2, 0.3]]), np.array([[4.0, 5.0, -60.0]])
    config = RetargetConfig(neutral="none", smoothing="none", mirror=True, translation=True)
    animation = retarget(weights, rotation, translation + [[0, 0, 0]], FPS, PoseRig(), config)
    out = _weights(animation)[0]
    assert out[_ch("eyeBlinkRight")] == 0.9 and out[_ch("mouthRight")] == 0.5 and out[_ch("jawOpen")] == 0.3
    assert out[_ch("eyeBlinkLeft")] == 0.0 and out[_ch("mouthLeft")] == 0.0
    expected = Rotation.from_rotvec([0.1, -0.2, -0.3]).as_quat()
    np.testing.assert_allclose(animation.rotation[0], expected * np.sign(expected[3] * animation.rotation[0, 3]))
    permutation = mirror_permutation()
    assert sorted(permutation) == list(range(53)) and (permutation[permutation] == np.arange(53)).all()
    assert CHANNELS[permutation[_ch("browInnerUpLeft")]] == "browInnerUpRight"


def test_eye_gaze_can_be_switched_off():
    weights = np.full((2, 53), 0.5)
    out = _weights(retarget(weights, None, None, FPS, ICT, RetargetConfig(neutral="none", smoothing="none",
                                                                         eye_gaze=False)))
    gaze = [k for k, n in enumerate(CHANNELS) if n.startswith("eyeLook")]
    assert len(gaze) == 8
    np.testing.assert_array_equal(out[:, gaze], 0.0)
    np.testing.assert_array_equal(np.delete(out, gaze, axis=1), 0.5)


def test_head_pose_composes_with_the_rest_pose_and_facing():
    rest = NodePose(translation=np.array([0.0, 1.5, 0.0]),
                    rotation=Rotation.from_euler("y", 30, degrees=True).as_quat())
    rotation = np.array([[0.0, 0.0, 0.0], [0.0, 0.4, 0.1]])
    translation = np.array([[1.0, 2.0, -60.0], [3.0, 2.0, -50.0]])
    config = RetargetConfig(neutral="none", smoothing="none", translation=True, translation_scale=2.0)
    animation = retarget(np.zeros((2, 53)), rotation, translation, FPS, PoseRig(rest), config)
    want = (Rotation.from_rotvec(rotation[1]) * Rotation.from_quat(rest.rotation)).as_quat()
    assert abs(np.dot(animation.rotation[1], want)) == pytest.approx(1.0)
    np.testing.assert_allclose(animation.translation, [[0, 1.5, 0], [0.04, 1.5, 0.2]])   # 2 x cm / 100
    backwards = retarget(np.zeros((2, 53)), rotation, translation, FPS, PoseRig(rest, facing="-z"), config)
    want = (Rotation.from_rotvec([0.0, 0.4, -0.1]) * Rotation.from_quat(rest.rotation)).as_quat()
    assert abs(np.dot(backwards.rotation[1], want)) == pytest.approx(1.0)
    np.testing.assert_allclose(backwards.translation[1], [-0.04, 1.5, -0.2])
    relative = retarget(np.zeros((2, 53)), rotation[::-1], None, FPS, PoseRig(),
                        RetargetConfig(neutral="none", smoothing="none", pose_relative=True))
    assert abs(relative.rotation[0, 3]) == pytest.approx(1.0)   # the reference frame is the identity
    off = retarget(np.zeros((2, 53)), rotation, None, FPS, PoseRig(), RetargetConfig(rotation=False))
    assert off.node is None and off.rotation is None and off.translation is None


def _live(weights, rotation, config, rig=ICT):
    live = LiveRetargeter(rig, config)
    frames = [live.push(DriverFrame(k / FPS, weights[k], rotation[k])) for k in range(len(weights))]
    return stack_frames(frames, rig)


@pytest.mark.parametrize("neutral", ["none", "frame", "percentile"])
def test_live_and_offline_agree_on_a_constant_input(neutral):
    weights = np.tile(np.linspace(0.1, 0.8, 53), (40, 1))
    rotation = np.tile([0.05, -0.2, 0.1], (40, 1))
    config = RetargetConfig(neutral=neutral, smoothing="one_euro")
    offline = retarget(weights, rotation, None, FPS, PoseRig(), config)
    live = _live(weights, rotation, config, PoseRig())
    np.testing.assert_allclose(_weights(live), _weights(offline), atol=1e-12)
    np.testing.assert_allclose(live.rotation, offline.rotation, atol=1e-12)
    expected = 0.0 if neutral != "none" else np.linspace(0.1, 0.8, 53)
    np.testing.assert_allclose(_weights(offline), np.broadcast_to(expected, (40, 53)), atol=1e-12)


def test_live_equals_offline_frame_by_frame_with_one_euro():
    weights = _clip(90, seed=4)
    rotation = np.cumsum(np.random.default_rng(5).normal(0, 0.05, (90, 3)), axis=0)
    config = RetargetConfig(neutral="frame", neutral_frame=0, smoothing="one_euro",
                            one_euro=OneEuroConfig(min_cutoff=1.0, beta=0.3), gain={"jawOpen": 1.5})
    offline = retarget(weights, rotation, None, FPS, PoseRig(), config)
    live = _live(weights, rotation, config, PoseRig())
    np.testing.assert_allclose(_weights(live), _weights(offline), atol=1e-12)
    np.testing.assert_allclose(live.rotation, offline.rotation, atol=1e-9)
    assert (np.einsum("ij,ij->i", live.rotation[1:], live.rotation[:-1]) > 0).all()   # no sign flips
    assert not np.allclose(_weights(offline)[1:], np.clip((weights[1:] - weights[0]) / (1 - weights[0]), 0, 1))


def test_zero_phase_smoothing_has_no_lag_and_one_euro_has_some():
    t = np.arange(120) / FPS
    bump = np.exp(-0.5 * ((t - 2.0) / 0.25) ** 2)             # peak at frame 60
    weights = np.zeros((120, 53))
    weights[:, _ch("jawOpen")] = 0.8 * bump + np.random.default_rng(1).normal(0, 0.02, 120)
    smooth = RetargetConfig(neutral="none", smoothing="zero_phase", zero_phase=ZeroPhaseConfig(cutoff_hz=3.0),
                            default_clamp=(-1.0, 2.0))
    out = _weights(retarget(weights, None, None, FPS, ICT, smooth))[:, _ch("jawOpen")]
    assert np.argmax(out) == 60
    lags = np.arange(-10, 11)
    correlation = [np.dot(np.roll(out, -lag), 0.8 * bump) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0
    error = np.sqrt(np.mean((out - 0.8 * bump) ** 2))
    assert error < 0.5 * np.sqrt(np.mean((weights[:, _ch("jawOpen")] - 0.8 * bump) ** 2))
    causal = _weights(retarget(weights, None, None, FPS, ICT, RetargetConfig(
        neutral="none", smoothing="one_euro", one_euro=OneEuroConfig(min_cutoff=1.0))))
    assert np.argmax(causal[:, _ch("jawOpen")]) > 62


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"weights must have shape \(T, 53\)"):
        retarget(np.zeros((5, 52)), None, None, FPS, ICT)
    with pytest.raises(ValueError, match=r"rotation must be finite with shape \(5, 3\)"):
        retarget(np.zeros((5, 53)), np.zeros((4, 3)), None, FPS, ICT)
    with pytest.raises(ValueError, match="neutral_frame 9 is past"):
        retarget(np.zeros((5, 53)), None, None, FPS, ICT, RetargetConfig(neutral="frame", neutral_frame=9))
    with pytest.raises(ValueError, match="zero-phase smoothing needs the whole clip"):
        LiveRetargeter(ICT, RetargetConfig(smoothing="zero_phase"))
    with pytest.raises(ValueError, match="smoothing must be one of"):
        RetargetConfig(smoothing="kalman")
    live = LiveRetargeter(ICT, PLAIN)
    live.push(DriverFrame(0.0, np.zeros(53)))
    with pytest.raises(ValueError, match="frame.weights"):
        live.push(DriverFrame(0.1, np.zeros(52)))


def test_a_head_under_a_turned_parent_still_yaws_about_the_vertical():
    """A face-capture export: the head mesh sits in a parent turned -90 degrees about x (a z-up scene). A
    driver yaw of +20 degrees must turn the head 20 degrees about the world's vertical (y) axis, not roll it."""
    from facecast.transfer.gltf_rig import GltfRig

    turned = Rotation.from_euler("x", -90, degrees=True)
    own = Rotation.from_euler("z", 15, degrees=True)  # the head node's own rest turn inside the parent
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "Armature", "rotation": turned.as_quat().tolist(), "children": [1]},
                  {"name": "HeadMesh", "mesh": 0, "rotation": own.as_quat().tolist(), "translation": [0, 0, 1.6]}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "targets": [{"POSITION": 0}] * 2}],
                    "extras": {"targetNames": ["jawOpen", "eyeBlinkLeft"]}}],
    }
    rig = GltfRig.from_document(document, "capture.glb")
    assert rig.head_node == 1
    yaw = np.array([[0.0, 0.0, 0.0], [0.0, np.radians(20.0), 0.0]])
    animation = retarget(np.zeros((2, 53)), yaw, None, FPS, rig, RetargetConfig(neutral="none", smoothing="none"))
    world_rest = turned * own
    world = turned * Rotation.from_quat(animation.rotation[1])
    turn = world * world_rest.inv()  # what the head did, in world axes
    np.testing.assert_allclose(turn.as_rotvec(), [0.0, np.radians(20.0), 0.0], atol=1e-9)
    # before: the driver's turn applied in the parent's axes, a yaw about the parent's y: a 20 degree roll
    naive = turned * Rotation.from_rotvec(yaw[1]) * own * world_rest.inv()
    assert abs(np.degrees(naive.as_rotvec()[2])) == pytest.approx(20.0, abs=1e-6)
