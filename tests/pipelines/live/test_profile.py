"""A live profile: calibration offsets, threshold, curve and gain per channel, the rest pose, and its JSON
file read back the same (bad files are one line naming the file)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facecast.pipelines.live.profile import (
    ChannelTuning,
    Profile,
    ProfileError,
    calibrated,
    load_profile,
    save_profile,
)
from facecast.recon.model.arkit import ARKIT_52

JAW, SMILE = ARKIT_52.index("jawOpen"), ARKIT_52.index("mouthSmileLeft")


def test_gain_curve_and_threshold_shape_a_channel():
    profile = Profile({"jawOpen": ChannelTuning(gain=2.0, curve=1.0, threshold=0.1),
                       "mouthSmileLeft": ChannelTuning(curve=0.5)})
    weights = np.zeros(52)
    for value, jaw, smile in ((0.05, 0.0, 0.05 ** 0.5), (0.3, 2 * 0.2 / 0.9, 0.3 ** 0.5), (0.9, 1.0, 0.9 ** 0.5)):
        weights[[JAW, SMILE]] = value
        shaped = profile.shape(weights)
        assert shaped[JAW] == pytest.approx(jaw) and shaped[SMILE] == pytest.approx(smile)
    assert np.all(np.delete(Profile().shape(weights), [JAW, SMILE]) == 0)
    with pytest.raises(ValueError, match="unknown channels"):
        Profile({"jawOpenWide": ChannelTuning()})
    with pytest.raises(ValueError, match="threshold"):
        ChannelTuning(threshold=1.0)


def test_a_calibration_removes_the_neutral_face_and_the_rest_pose():
    rng = np.random.default_rng(0)
    neutral = np.zeros(52)
    neutral[[JAW, SMILE]] = 0.2, 0.1  # this user's resting jaw and smile
    arkit = np.clip(neutral + rng.normal(0, 0.01, (40, 52)), 0, 1)
    rest = Rotation.from_euler("YXZ", [0.1, -0.05, 0.02])  # the camera sees the head a little turned
    rotations = (rest * Rotation.from_rotvec(rng.normal(0, 0.005, (40, 3)))).as_quat()
    translations = np.array([0.01, -0.02, 0.5]) + rng.normal(0, 1e-4, (40, 3))
    profile = calibrated(Profile(), arkit, rotations, translations)
    still = profile.shape(neutral)
    assert still[JAW] == pytest.approx(0.0, abs=0.02) and still[SMILE] == pytest.approx(0.0, abs=0.02)
    opened = neutral.copy()
    opened[JAW] = 0.6
    assert profile.shape(opened)[JAW] == pytest.approx(0.5, abs=0.02)  # (0.6 - 0.2) / (1 - 0.2)
    turned, moved = profile.pose(rest.as_quat(), np.array([0.01, -0.02, 0.5]))
    assert Rotation.from_quat(turned).magnitude() < 0.01 and np.abs(moved).max() < 1e-3


def test_the_json_file_reads_back_and_bad_files_name_themselves(tmp_path):
    rng = np.random.default_rng(1)
    profile = calibrated(Profile({"jawOpen": ChannelTuning(1.5, 0.8, 0.05)}), rng.uniform(0, 0.2, (5, 52)),
                         Rotation.random(5, random_state=1).as_quat(), rng.normal(0, 0.01, (5, 3)))
    path = save_profile(profile, tmp_path / "me.json")
    back = load_profile(path)
    assert back.channels == profile.channels
    np.testing.assert_allclose(back.neutral, profile.neutral, atol=1e-6)
    np.testing.assert_allclose(back.rest_rotation, profile.rest_rotation, atol=1e-7)
    weights = rng.uniform(0, 1, 52)
    np.testing.assert_allclose(back.shape(weights), profile.shape(weights), atol=1e-5)
    for text, fragment in (("{", "is not valid JSON"), ('{"channels": {"jawOpen": {"gain": -1}}}', "0 <= gain <= 100"),
                           ('{"neutral": {"jawShut": 0.1}}', "unknown channels"), ("[]", "must hold a JSON object")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ProfileError, match=f"{bad}.*{fragment}|{fragment}"):
            load_profile(bad)
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "missing.json")
    assert json.loads(path.read_text())["channels"]["jawOpen"]["curve"] == 0.8
