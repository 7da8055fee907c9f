"""Per-frame coefficient CSV / JSON lines: columns, round trips, Euler convention, validation."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facecast.pipelines.export.coefficients import (
    CoefficientTrack,
    export_coefficients_csv,
    export_coefficients_jsonl,
    read_coefficients_csv,
    read_coefficients_jsonl,
    track_from_coeffs,
    yaw_pitch_roll,
)
from facecast.recon.model.arkit import ARKIT_52

NAMES = tuple(n for n in ARKIT_52 if n not in ("browInnerUp", "cheekPuff", "tongueOut")) + (
    "browInnerUpLeft", "browInnerUpRight", "cheekPuffLeft", "cheekPuffRight")


def _track(frames: int = 6, landmarks: bool = True, seed: int = 0) -> CoefficientTrack:
    rng = np.random.default_rng(seed)
    return CoefficientTrack(
        frame=np.arange(10, 10 + frames), time=np.arange(10, 10 + frames) / 30.0, names=NAMES,
        expression=rng.uniform(0, 1, size=(frames, len(NAMES))).astype(np.float32),
        rotation=rng.normal(scale=0.3, size=(frames, 3)),
        translation=rng.normal(scale=5.0, size=(frames, 3)) + [0, 0, -60],
        landmarks=rng.uniform(0, 512, size=(frames, 68, 2)) if landmarks else None)


def test_names_fixture_has_53_channels():
    assert len(NAMES) == 53 and len(set(NAMES)) == 53


def test_csv_header_lists_the_documented_columns():
    header = export_coefficients_csv(_track()).decode().splitlines()[0].split(",")
    assert header[:2] == ["frame", "time"]
    assert tuple(header[2:55]) == NAMES
    assert header[55:64] == ["rot_x", "rot_y", "rot_z", "yaw_deg", "pitch_deg", "roll_deg",
                             "tx_cm", "ty_cm", "tz_cm"]
    assert header[64:68] == ["lm0_x", "lm0_y", "lm1_x", "lm1_y"] and header[-1] == "lm67_y"
    assert len(header) == 64 + 136


@pytest.mark.parametrize("landmarks", [True, False])
def test_csv_round_trip(landmarks):
    track = _track(landmarks=landmarks)
    back = read_coefficients_csv(export_coefficients_csv(track))
    assert back.names == NAMES
    np.testing.assert_array_equal(back.frame, track.frame)
    np.testing.assert_allclose(back.time, track.time, rtol=1e-8)
    np.testing.assert_array_equal(back.expression.astype(np.float32), track.expression)  # exact float32
    np.testing.assert_allclose(back.rotation, track.rotation, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(back.translation, track.translation, rtol=1e-8)
    if landmarks:
        np.testing.assert_allclose(back.landmarks, track.landmarks, rtol=1e-8)
    else:
        assert back.landmarks is None


def test_csv_euler_columns_match_rotation():
    track = _track()
    rows = list(csv.DictReader(io.StringIO(export_coefficients_csv(track).decode())))
    written = np.array([[float(r[c]) for c in ("yaw_deg", "pitch_deg", "roll_deg")] for r in rows])
    rebuilt = Rotation.from_euler("YXZ", written, degrees=True).as_matrix()
    np.testing.assert_allclose(rebuilt, Rotation.from_rotvec(track.rotation).as_matrix(), atol=1e-7)


@pytest.mark.parametrize("landmarks", [True, False])
def test_jsonl_round_trip_is_exact(landmarks):
    track = _track(landmarks=landmarks, seed=1)
    data = export_coefficients_jsonl(track)
    first = json.loads(data.decode().splitlines()[0])
    assert list(first) == ["frame", "time", "expression", "rotation", "yaw_pitch_roll_deg",
                           "translation_cm"] + (["landmarks"] if landmarks else [])
    assert list(first["expression"]) == list(NAMES)
    back = read_coefficients_jsonl(data)
    assert back.names == NAMES
    for field in ("frame", "time", "expression", "rotation", "translation"):
        np.testing.assert_array_equal(getattr(back, field), getattr(track, field), err_msg=field)
    if landmarks:
        np.testing.assert_array_equal(back.landmarks, track.landmarks)


def test_yaw_pitch_roll_convention():
    angles = np.radians([[30.0, 0, 0], [0, 20.0, 0], [0, 0, -15.0], [25.0, -10.0, 5.0]])
    rotations = Rotation.from_euler("YXZ", angles).as_rotvec()
    np.testing.assert_allclose(yaw_pitch_roll(rotations), angles, atol=1e-12)
    # positive yaw turns the face (looking down +z) towards +x; positive pitch tips it down
    forward = Rotation.from_rotvec(rotations[:2]).apply([0.0, 0.0, 1.0])
    assert forward[0, 0] > 0.4 and forward[1, 1] < -0.3


def test_track_from_coeffs_accepts_tensors():
    coeffs = SimpleNamespace(expression=torch.rand(4, 53), rotation=torch.zeros(4, 3),
                             translation=torch.tensor([[0.0, 0.0, -60.0]]).repeat(4, 1))
    track = track_from_coeffs(coeffs, NAMES, fps=25.0, first_frame=5, landmarks=torch.zeros(4, 68, 2))
    np.testing.assert_array_equal(track.frame, [5, 6, 7, 8])
    np.testing.assert_allclose(track.time, np.array([5, 6, 7, 8]) / 25.0)
    np.testing.assert_allclose(track.expression, coeffs.expression.numpy(), rtol=1e-7)
    assert track.landmarks.shape == (4, 68, 2)


def test_track_validates_shapes_and_names():
    good = _track()
    with pytest.raises(ValueError, match=r"expression must have shape \(6, 53\)"):
        CoefficientTrack(good.frame, good.time, NAMES, good.expression[:, :52], good.rotation, good.translation)
    with pytest.raises(ValueError, match="unique"):
        CoefficientTrack(good.frame, good.time, NAMES[:52] + ("rot_x",), good.expression,
                         good.rotation, good.translation)
    with pytest.raises(ValueError, match=r"landmarks must have shape \(6, K, 2\)"):
        CoefficientTrack(good.frame, good.time, NAMES, good.expression, good.rotation, good.translation,
                         landmarks=np.zeros((6, 68, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        CoefficientTrack(good.frame, good.time * np.nan, NAMES, good.expression, good.rotation,
                         good.translation)


@pytest.mark.parametrize("edit, message", [
    (lambda lines: ["time,frame" + lines[0][10:]] + lines[1:], "must start with frame,time"),
    (lambda lines: [lines[0].replace("yaw_deg,pitch_deg", "pitch_deg,yaw_deg")] + lines[1:], "in this order"),
    (lambda lines: [lines[0] + ",lm68_x"] + [line + ",1" for line in lines[1:]], "trailing columns"),
    (lambda lines: lines[:1] + [lines[1] + ",1"], "line 2 has"),
    (lambda lines: lines[:1] + [lines[1].replace(",", ",x", 1)], "could not convert"),
])
def test_csv_reader_rejects_malformed_files(edit, message):
    lines = export_coefficients_csv(_track(frames=2)).decode().splitlines()
    with pytest.raises(ValueError, match=message):
        read_coefficients_csv(("\n".join(edit(lines)) + "\n").encode())


def test_jsonl_reader_rejects_inconsistent_lines():
    lines = export_coefficients_jsonl(_track(frames=2)).decode().splitlines()
    second = json.loads(lines[1])
    second["expression"].pop("jawOpen")
    with pytest.raises(ValueError, match="line 2 names other channels"):
        read_coefficients_jsonl((lines[0] + "\n" + json.dumps(second)).encode())
    del second["rotation"]
    with pytest.raises(ValueError, match="line 2 lacks"):
        read_coefficients_jsonl((lines[0] + "\n" + json.dumps(second)).encode())
