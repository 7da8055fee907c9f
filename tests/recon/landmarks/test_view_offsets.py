"""The calibrated MediaPipe table and its optional view-dependent offsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.recon.landmarks.correspondence import (
    N_VIEW_FEATURES,
    ViewOffsets,
    load_calibrated_mapping,
    mediapipe478_mapping,
    view_direction,
    view_features,
)
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.geometry import axis_angle_to_matrix


def test_shipped_calibrated_table_is_a_valid_surface_mapping():
    mapping = load_calibrated_mapping()
    assert len(mapping) == 478 and mapping.view is not None
    np.testing.assert_allclose(mapping.barycentric.sum(1), 1.0, atol=1e-9)
    assert (mapping.barycentric >= -1e-9).all()
    assert mapping.view.base.shape == (478, 3) and mapping.view.gain.shape == (478, 3, N_VIEW_FEATURES)
    # offsets are small corrections (cm), not a different face
    assert np.abs(mapping.view.base).max() < 2.0


def test_default_mapping_is_calibrated_without_view_offsets():
    plain, with_view = mediapipe478_mapping(), mediapipe478_mapping(view_offsets=True)
    assert plain.view is None and with_view.view is not None
    np.testing.assert_array_equal(plain.vertex_ids, with_view.vertex_ids)
    registered = mediapipe478_mapping(calibrated=False)
    assert registered.view is None and len(registered) == 478
    with pytest.raises(ValueError, match="calibrated"):
        mediapipe478_mapping(calibrated=False, view_offsets=True)


def test_view_offsets_reject_bad_shapes():
    with pytest.raises(ValueError, match="gain"):
        ViewOffsets(np.zeros((4, 3)), np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match="base"):
        ViewOffsets(np.zeros((4, 2)), np.zeros((4, 3, N_VIEW_FEATURES)))


def test_view_direction_and_features_follow_the_head_turn():
    translation = torch.tensor([[0.0, 0.0, -50.0]], dtype=torch.float64)
    frontal = view_direction(torch.eye(3, dtype=torch.float64)[None], translation)
    np.testing.assert_allclose(frontal.numpy(), 0.0, atol=1e-12)
    yaw = 0.3  # head turned about +y: the camera is seen at -sin(yaw) in the model's x
    turned = view_direction(axis_angle_to_matrix(torch.tensor([[0.0, yaw, 0.0]], dtype=torch.float64)), translation)
    np.testing.assert_allclose(turned.numpy(), [[-np.sin(yaw), 0.0]], atol=1e-12)
    np.testing.assert_allclose(view_features(torch.tensor([[0.2, -0.5]])).numpy(),
                               [[0.2, -0.5, 0.04, 0.25, -0.1]], atol=1e-7)


def test_sparse_landmarks_add_rotated_offsets(model64):
    base = load_calibrated_mapping()
    rng = np.random.default_rng(0)
    offsets = ViewOffsets(rng.normal(size=(478, 3)) * 0.1, np.zeros((478, 3, N_VIEW_FEATURES)))
    plain = SparseLandmarks.build(model64, base.__class__(base.scheme, base.vertex_ids, base.barycentric,
                                                          base.surface))
    shifted = SparseLandmarks.build(model64, base.__class__(base.scheme, base.vertex_ids, base.barycentric,
                                                            base.surface, offsets))
    identity, expression = torch.zeros(1, 100, dtype=torch.float64), torch.zeros(1, 53, dtype=torch.float64)
    rotation = torch.tensor([[0.1, -0.4, 0.05]], dtype=torch.float64)
    translation = torch.tensor([[1.0, 2.0, -45.0]], dtype=torch.float64)
    difference = (shifted.evaluate(identity, expression, rotation, translation)
                  - plain.evaluate(identity, expression, rotation, translation))
    expected = torch.as_tensor(offsets.base) @ axis_angle_to_matrix(rotation)[0].T
    np.testing.assert_allclose(difference[0].numpy(), expected.numpy(), atol=1e-10)
    zero = ViewOffsets(np.zeros((478, 3)), np.zeros((478, 3, N_VIEW_FEATURES)))
    none = SparseLandmarks.build(model64, base.__class__(base.scheme, base.vertex_ids, base.barycentric,
                                                         base.surface, zero))
    np.testing.assert_allclose(none.evaluate(identity, expression, rotation, translation).numpy(),
                               plain.evaluate(identity, expression, rotation, translation).numpy(), atol=1e-12)
