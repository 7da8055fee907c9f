"""Landmark schemes on the ICT mesh: shipped MediaPipe table, iBUG-68, dynamic jaw contour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.recon.calibrate.mediapipe_table import read_obj
from facecast.recon.landmarks.correspondence import (
    MEDIAPIPE_TO_IBUG68,
    SURFACE_IRIS_CENTRE,
    SURFACE_IRIS_EDGE,
    SURFACE_SKIN,
    barycentric_points,
    ibug68_mapping,
    ibug68_points,
    jaw_contour,
    load_mediapipe_table,
    select_contour,
)
from facecast.recon.model.geometry import axis_angle_to_matrix
from facecast.recon.model.topology import REGION_STARTS

#: iBUG-68 index of each point's mirror image.
IBUG_MIRROR = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30, 35, 34, 33, 32, 31]
               + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
               + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
MIDLINE = (0, 1, 2, 4, 5, 6, 8, 9, 10, 151, 152, 164, 168, 175, 195, 197, 199, 200)


@pytest.fixture(scope="module")
def table():
    return load_mediapipe_table()


@pytest.fixture(scope="module")
def neutral(ict_data) -> torch.Tensor:
    return torch.as_tensor(ict_data.neutral, dtype=torch.float64)[None]


@pytest.fixture(scope="module")
def canonical(shared_dir, table) -> np.ndarray:
    """The canonical face model's vertices in MediaPipe landmark order (via the table's order)."""
    mesh = read_obj(shared_dir / "assets" / "mediapipe" / "canonical_face_model.obj")
    return mesh.vertices[table.canonical_order]


def mirror_map(points: np.ndarray) -> np.ndarray:
    """Index of each point's mirror image across the plane through MIDLINE (nearest neighbour)."""
    centre = points[list(MIDLINE)].mean(axis=0)
    normal = np.linalg.svd(points[list(MIDLINE)] - centre)[2][2]
    mirrored = points - 2 * ((points - centre) @ normal)[:, None] * normal
    return np.linalg.norm(mirrored[:, None] - points[None], axis=-1).argmin(axis=1)


def test_shipped_table_is_well_formed(table, ict_data):
    m = table.mapping
    assert len(m) == 478 and m.scheme == "mediapipe478"
    assert m.vertex_ids.min() >= 0 and m.vertex_ids.max() < ict_data.n_vertices
    assert np.all(m.barycentric >= 0) and np.all(m.barycentric <= 1)
    np.testing.assert_allclose(m.barycentric.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(m.surface[:468] == SURFACE_SKIN)
    assert np.all(m.vertex_ids[:468] < REGION_STARTS["mouth_socket"])  # face or head/neck skin
    assert m.surface[468] == m.surface[473] == SURFACE_IRIS_CENTRE
    assert np.all(m.surface[[469, 470, 471, 472, 474, 475, 476, 477]] == SURFACE_IRIS_EDGE)
    eyeballs = (REGION_STARTS["eyeballs"], REGION_STARTS["lacrimal"])
    assert np.all((m.vertex_ids[468:] >= eyeballs[0]) & (m.vertex_ids[468:] < eyeballs[1]))
    assert sorted(table.canonical_order.tolist()) == list(range(468))


def test_canonical_order_is_mediapipe_order(canonical):
    """MediaPipe's known mirror pairs are mirror images in the reordered model (a wrong order breaks this)."""
    mirror = mirror_map(canonical)
    for left, right in ((33, 263), (133, 362), (61, 291), (127, 356), (234, 454), (70, 300)):
        assert mirror[left] == right, (left, right)
    assert all(mirror[i] == i for i in MIDLINE)


def test_ibug_subset_is_symmetric_and_valid(canonical):
    subset = np.array(MEDIAPIPE_TO_IBUG68)
    assert len(set(subset.tolist())) == 68 and subset.max() < 468
    mirror = mirror_map(canonical)
    assert [int(mirror[subset[i]]) for i in range(68)] == [int(subset[j]) for j in IBUG_MIRROR]


def test_mapped_points_lie_on_registered_points(table, neutral):
    points = table.mapping.evaluate(neutral)[0, :468].numpy()
    dist_mm = 10 * np.linalg.norm(points - table.registered, axis=1)
    assert np.median(dist_mm) < 0.5 and dist_mm.max() < 3.0  # build report: median 0.32, max 2.15 mm
    np.testing.assert_allclose(dist_mm, table.residual_mm, atol=0.02)


def test_mapped_points_agree_with_ict_landmarks(table, neutral, ict_data):
    points = table.mapping.evaluate(neutral)[0].numpy()
    ict = ict_data.neutral[ict_data.landmarks68]
    inner_mm = 10 * np.linalg.norm(points[list(MEDIAPIPE_TO_IBUG68)][17:] - ict[17:], axis=1)
    assert inner_mm.mean() < 5.0 and inner_mm.max() < 15.0  # measured 3.2 mm mean, 11 mm max (brows)
    corner_mm = 10 * np.linalg.norm(points[[33, 263]] - ict[[36, 45]], axis=1)
    assert corner_mm.max() < 1.5  # anchored points
    # irises sit in front of the eye corners' midpoints, right eye at -x
    for centre, corners in ((468, [36, 39]), (473, [42, 45])):
        assert abs(points[centre, 0] - ict[corners, 0].mean()) < 0.6
        assert points[centre, 2] > ict[corners, 2].max()
    assert points[469, 0] > points[468, 0] > points[471, 0] and points[470, 1] > points[468, 1] > points[472, 1]


def test_ibug68_mapping_equals_ict_landmark_vertices(ict_data, neutral, model):
    mapping = ibug68_mapping(ict_data)
    np.testing.assert_array_equal(mapping.evaluate(neutral)[0].numpy(),
                                  ict_data.neutral[ict_data.landmarks68].astype(np.float64))
    identity = torch.randn(2, 100) * 0.5
    expression = torch.rand(2, 53) * 0.5
    out = model(identity, expression)
    torch.testing.assert_close(mapping.evaluate(out.vertices), out.landmarks)


def test_barycentric_points_gradcheck():
    vertices = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    ids = np.array([[0, 1, 2], [3, 4, 5], [5, 5, 5]])
    bary = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64,
                        requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, b: barycentric_points(v, ids, b), (vertices, bary))
    expected = 0.2 * vertices[:, 0] + 0.3 * vertices[:, 1] + 0.5 * vertices[:, 2]
    torch.testing.assert_close(barycentric_points(vertices, ids, bary)[:, 0], expected)


def test_evaluate_rejects_bad_vertices(table):
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        table.mapping.evaluate(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="full mesh"):
        table.mapping.evaluate(torch.zeros(1, 100, 3))


def turned(neutral: torch.Tensor, yaw_degrees: float) -> torch.Tensor:
    """Neutral rotated about the vertical axis (positive yaw: the face turns to its left, toward +x)."""
    rot = axis_angle_to_matrix(torch.tensor([[0.0, np.radians(yaw_degrees), 0.0]], dtype=neutral.dtype))
    return neutral @ rot.transpose(-1, -2)


def test_dynamic_contour_follows_the_silhouette(ict_data, neutral):
    contour = jaw_contour(ict_data)
    assert contour.candidates.shape[0] == 17 and contour.candidates.shape[1] > 5
    rows = np.arange(17)
    np.testing.assert_array_equal(contour.candidates[rows, contour.landmark_column], ict_data.landmarks68[:17])
    posed = torch.cat([turned(neutral, -35.0), neutral, turned(neutral, 35.0)])
    picked = select_contour(posed, contour).numpy()
    assert np.all(picked[:, 8] == ict_data.landmarks68[8])
    column = np.array([[int(np.nonzero(contour.candidates[k] == v)[0][0]) for k, v in enumerate(p)] for p in picked])
    behind = column - contour.landmark_column  # > 0: picked behind ICT's landmark, < 0: in front
    # turned to its left (+35): the right jaw (0-7) faces the camera -> outline behind the landmark,
    # the left jaw (9-16) turns away -> outline in front of it; mirrored for -35
    assert behind[2, 0:7].min() > 0 and behind[2, 10:17].max() < 0
    assert behind[0, 10:17].min() > 0 and behind[0, 0:7].max() < 0
    assert not np.array_equal(picked[0], picked[2])
    # each pick is the extreme image x of its line; on the side turned away it is the face's outline
    face = posed[2, : REGION_STARTS["head_neck"]].numpy()
    for k in range(1, 17):
        if k == 8:
            continue
        line_x = posed[2, contour.candidates[k], 0].numpy()
        pick_x = posed[2, picked[2, k], 0].item()
        assert pick_x == (line_x.min() if k < 8 else line_x.max())
        if k > 8:
            band = face[np.abs(face[:, 1] - posed[2, picked[2, k], 1].item()) < 0.25]
            assert band[:, 0].max() - pick_x < 0.2  # cm (measured <= 0.16)


def test_ibug68_points_swaps_in_the_contour(ict_data, neutral):
    mapping, contour = ibug68_mapping(ict_data), jaw_contour(ict_data)
    posed = turned(neutral, 35.0).requires_grad_(True)
    points = ibug68_points(posed, mapping, contour, image_points=posed)
    ids = select_contour(posed, contour)
    torch.testing.assert_close(points[0, :17], posed[0, ids[0]])
    torch.testing.assert_close(points[0, 17:], posed[0, ict_data.landmarks68[17:]])
    points.sum().backward()
    assert posed.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="image_points"):
        ibug68_points(posed, mapping, contour)


def test_regenerated_table_matches_shipped(shared_dir, table):
    from facecast.recon.calibrate.mediapipe_table import build

    arrays, report = build(shared_dir / "assets")
    np.testing.assert_array_equal(arrays["canonical_order"], table.canonical_order)
    np.testing.assert_allclose(arrays["registered"], table.registered, atol=1e-3)
    same = (arrays["vertex_ids"] == table.mapping.vertex_ids).all(axis=1)
    assert same.mean() > 0.98
    assert report.surface_final[2] < 3.0 and report.anchor_final[2] < 1.5
