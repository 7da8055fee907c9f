"""iBUG-68 tables on the mesh: view-dependent jaw blend, file round trip, evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facecast.recon.fit.landmark_fit import FitState, coeffs_from_state
from facecast.recon.landmarks.ibug import (
    JAW_SIDE,
    IbugTable,
    ModelLandmarks,
    ict68_table,
    load_ibug_table,
    mediapipe68_table,
    save_ibug_table,
    view_side,
)
from facecast.recon.model.coeffs import FaceCoeffs


def posed_coeffs(yaw_radians: list[float], dtype=torch.float32) -> FaceCoeffs:
    """Neutral faces 50 cm in front of the camera, turned about the vertical axis."""
    b = len(yaw_radians)
    rotation = torch.zeros(b, 3, dtype=dtype)
    rotation[:, 1] = torch.tensor(yaw_radians, dtype=dtype)
    translation = torch.tensor([[0.0, 0.0, -50.0]] * b, dtype=dtype)
    state = FitState(rotation, translation, torch.zeros(b, 100, dtype=dtype), torch.zeros(b, 53, dtype=dtype))
    return coeffs_from_state(state, torch.full((b,), 800.0, dtype=dtype),
                             torch.tensor([[320.0, 240.0]] * b, dtype=dtype), 1)


def test_view_side_is_minus_sine_of_a_turn_about_y():
    # rotating the head by +a about y puts the camera at -sin(a) on the model's x axis
    side = view_side(posed_coeffs([0.0, 0.3, -0.5]))
    assert torch.allclose(side, torch.tensor([0.0, -math.sin(0.3), math.sin(0.5)]), atol=1e-6)


def test_jaw_weights_follow_the_side_turned_to_the_camera_and_clip():
    table = mediapipe68_table()
    gain = np.full(17, -2.0)
    table = IbugTable(table.vertex_ids, table.barycentric, np.full(17, 0.5), gain)
    w = table.jaw_weights(torch.tensor([0.0, 0.2, 1.0], dtype=torch.float64)).numpy()
    assert w.shape == (3, 17)
    assert np.allclose(w[0], 0.5)
    # camera on the model's +x side: the left jaw (9-16, near side) moves less, the right (0-7) more
    assert np.allclose(w[1, 9:], 0.1) and np.allclose(w[1, :8], 0.9) and w[1, 8] == 0.5
    assert np.allclose(w[2, 9:], 0.0) and np.allclose(w[2, :8], 1.0)
    assert JAW_SIDE[0] == -1 and JAW_SIDE[8] == 0 and JAW_SIDE[16] == 1


def test_table_without_gain_is_view_independent_and_old_files_load(tmp_path):
    base = mediapipe68_table()
    assert np.array_equal(base.contour_gain, np.zeros(17)) and not base.uses_contour
    path = tmp_path / "old.npz"
    np.savez(path, vertex_ids=base.vertex_ids, barycentric=base.barycentric, contour_weight=np.full(17, 0.25))
    old = load_ibug_table(path)
    assert np.array_equal(old.contour_gain, np.zeros(17)) and old.uses_contour
    with pytest.raises(ValueError):
        IbugTable(base.vertex_ids, base.barycentric, np.zeros(17), np.zeros(16))


def test_table_round_trip(tmp_path):
    base = mediapipe68_table()
    table = IbugTable(base.vertex_ids, base.barycentric, np.linspace(0, 1, 17), np.linspace(-2, 2, 17))
    save_ibug_table(table, tmp_path / "t.npz", cost=np.zeros(68))
    back = load_ibug_table(tmp_path / "t.npz")
    for name in ("vertex_ids", "barycentric", "contour_weight", "contour_gain"):
        assert np.array_equal(getattr(back, name), getattr(table, name))


def test_blend_moves_jaw_between_fixed_point_and_silhouette(model):
    coeffs = posed_coeffs([0.0, 0.4])
    base = mediapipe68_table()
    with torch.no_grad():
        fixed = ModelLandmarks(model, base).points(coeffs).numpy()
        outline = ModelLandmarks(model, ict68_table(model.data)).points(coeffs).numpy()
    # frontal weight 0, gain -1: only the far side blends in; yaw +0.4 puts the camera on the
    # model's -x side, so the far side is the subject's left jaw (9-16, model +x)
    table = IbugTable(base.vertex_ids, base.barycentric, np.zeros(17), np.full(17, -1.0))
    with torch.no_grad():
        blended = ModelLandmarks(model, table).points(coeffs).numpy()
    assert np.allclose(blended[0], fixed[0], atol=1e-5)  # frontal: w = 0 everywhere
    w = math.sin(0.4)
    expect = (1 - w) * fixed[1, 9:17] + w * outline[1, 9:17]
    assert np.allclose(blended[1, 9:17], expect, atol=1e-4)
    assert not np.allclose(blended[1, 9:17], fixed[1, 9:17], atol=1e-2)
    assert np.allclose(blended[1, :9], fixed[1, :9], atol=1e-5)
    assert np.allclose(blended[1, 17:], fixed[1, 17:], atol=1e-5)
    assert ModelLandmarks(model, table)(coeffs).shape == (2, 68, 2)


def test_shipped_table_is_valid():
    table = load_ibug_table()
    assert table.vertex_ids.shape == (68, 3)
    assert np.allclose(table.barycentric.sum(1), 1.0) and (table.barycentric >= 0).all()
    assert table.contour_gain.shape == (17,) and table.contour_gain[8] == 0 and table.contour_weight[8] == 0
