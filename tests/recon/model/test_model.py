"""MorphableModel, ARKit naming, regions and rotations on the real ICT model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facecast.recon.model import arkit
from facecast.recon.model.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from facecast.recon.model.topology import RegionError, expand_regions, triangulate


def _zeros(model, batch=1):
    dtype = model.neutral.dtype
    return torch.zeros(batch, 100, dtype=dtype), torch.zeros(batch, 53, dtype=dtype)


def test_neutral_identity_and_expression_are_the_ict_shapes(model, ict_data):
    identity, expression = _zeros(model, 2)
    identity[1, 3] = 1.0
    expression[1, model.expression_names.index("jawOpen")] = 1.0
    out = model(identity, expression)
    np.testing.assert_allclose(out.vertices[0].numpy(), ict_data.neutral, atol=1e-6)
    ict_jaw = ict_data.ict_expression_names.index("jawOpen")
    expected = (ict_data.neutral + ict_data.identity_modes[3].astype(np.float32)
                + ict_data.expression_modes[ict_jaw].astype(np.float32))
    np.testing.assert_allclose(out.vertices[1].numpy(), expected, atol=1e-5)
    # the jaw really opens: the chin landmark (8) moves down by centimetres
    assert out.landmarks[1, 8, 1] - out.landmarks[0, 8, 1] < -1.0


def test_expression_names_are_arkit_camel_case_in_arkit_order(model):
    names = model.expression_names
    assert len(names) == 53 and len(set(names)) == 53
    assert names[:3] == ["eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft"]
    assert "browInnerUpLeft" in names and "cheekPuffRight" in names
    shapes = [arkit.arkit_from_camel(n) for n in names]
    ranks = [arkit.ARKIT_52.index(s) for s in shapes]
    assert ranks == sorted(ranks)
    assert set(arkit.ARKIT_52) - set(shapes) == {"tongueOut"}
    # every ARKit name maps to the ICT shape of the same meaning
    for ours, ict in zip(names, model.ict_expression_names):
        assert arkit.camel_from_ict(ict) == ours


def test_arkit_conversion_round_trip(model):
    names = model.expression_names
    weights = torch.rand(4, 53, dtype=torch.float64)
    left, right = names.index("browInnerUpLeft"), names.index("browInnerUpRight")
    weights[:, right] = weights[:, left]
    weights[:, names.index("cheekPuffRight")] = weights[:, names.index("cheekPuffLeft")]
    ark = arkit.to_arkit(weights, names)
    assert ark.shape == (4, 52)
    assert torch.all(ark[:, arkit.ARKIT_52.index("tongueOut")] == 0)
    torch.testing.assert_close(arkit.from_arkit(ark, names), weights)
    mixed = torch.zeros(1, 53, dtype=torch.float64)
    mixed[0, left], mixed[0, right] = 0.2, 0.6
    assert arkit.to_arkit(mixed, names)[0, arkit.ARKIT_52.index("browInnerUp")].item() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="52 channels"):
        arkit.from_arkit(torch.zeros(1, 53), names)


def test_float64_matches_float32(model, model64):
    gen = torch.Generator().manual_seed(0)
    identity, expression = torch.randn(3, 100, generator=gen), torch.rand(3, 53, generator=gen)
    out32 = model(identity, expression).vertices
    out64 = model64(identity.double(), expression.double()).vertices
    torch.testing.assert_close(out32.double(), out64, atol=1e-4, rtol=0)


def test_subset_fast_path_equals_full(model):
    gen = torch.Generator().manual_seed(1)
    identity, expression = torch.randn(2, 100, generator=gen), torch.rand(2, 53, generator=gen)
    rotation, translation = torch.randn(2, 3, generator=gen) * 0.3, torch.randn(2, 3, generator=gen)
    full = model(identity, expression, rotation, translation)
    sparse = model.subset(model.data.landmarks68)
    assert sparse.n_vertices == 68
    part = sparse(identity, expression, rotation, translation)
    torch.testing.assert_close(part.vertices, full.landmarks)
    torch.testing.assert_close(part.landmarks, full.landmarks)
    face = model.subset(np.flatnonzero(model.data.region_vertex_mask(["face"])))
    assert face.n_vertices == 9409
    assert face(identity, expression).landmarks is not None  # all 68 landmarks are on the face


def test_rigid_pose(model):
    identity, expression = _zeros(model)
    base = model(identity, expression).vertices
    quarter = torch.tensor([[0.0, math.pi / 2, 0.0]])
    moved = model(identity, expression, quarter, torch.tensor([[1.0, 2.0, 3.0]])).vertices
    # +90 degrees about y maps x -> -z and z -> x, then translates
    torch.testing.assert_close(moved[..., 0] - 1.0, base[..., 2], atol=1e-4, rtol=0)
    torch.testing.assert_close(moved[..., 2] - 3.0, -base[..., 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(moved[..., 1] - 2.0, base[..., 1], atol=1e-4, rtol=0)


def test_bad_inputs_raise_clear_errors(model):
    identity, expression = _zeros(model)
    with pytest.raises(ValueError, match=r"identity must have shape \(B, 100\)"):
        model(torch.zeros(1, 99), expression)
    with pytest.raises(ValueError, match=r"expression must have shape \(B, 53\)"):
        model(identity, torch.zeros(53))
    with pytest.raises(TypeError, match="float64 but the model is torch.float32"):
        model(identity.double(), expression)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(torch.zeros(2, 100), expression)
    with pytest.raises(ValueError, match=r"rotation must have shape \(1, 3\)"):
        model(identity, expression, rotation=torch.zeros(2, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(np.zeros((1, 100)), expression)


def test_regions_and_triangles(model, ict_data):
    assert expand_regions(["eyes", "teeth"]) == ["teeth", "eyeballs", "lacrimal", "eye_blend", "eye_occlusion"]
    with pytest.raises(RegionError, match="unknown region 'nose'"):
        expand_regions(["face", "nose"])
    head = ict_data.region_face_mask(["head"])
    np.testing.assert_array_equal(head, ict_data.material_face_mask(["M_Face", "M_BackHead"]))
    assert model.triangles(("head",)).shape == (28068, 3)
    assert int(ict_data.region_vertex_mask(["all"]).sum()) == 26719
    tris = triangulate(np.array([[0, 1, 2, 3], [4, 5, 6, -1]]))
    np.testing.assert_array_equal(tris, [[0, 1, 2], [4, 5, 6], [0, 2, 3]])


@pytest.mark.parametrize("angle", [0.0, 1e-6, 0.5, 2.0, math.pi - 1e-4])
def test_axis_angle_round_trip(angle):
    axis = torch.nn.functional.normalize(torch.tensor([[0.3, -0.8, 0.5]], dtype=torch.float64), dim=-1)
    vec = axis * angle
    mat = axis_angle_to_matrix(vec)
    torch.testing.assert_close(mat @ mat.transpose(-1, -2), torch.eye(3, dtype=torch.float64)[None])
    torch.testing.assert_close(matrix_to_axis_angle(mat), vec, atol=1e-6, rtol=0)


def test_axis_angle_gradcheck():
    vec = torch.tensor([[0.3, -0.2, 0.1], [1e-9, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (vec,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(model):
    gen = torch.Generator().manual_seed(2)
    identity, expression = torch.randn(2, 100, generator=gen), torch.rand(2, 53, generator=gen)
    gpu = model.to("cuda")
    try:
        out = gpu(identity.cuda(), expression.cuda()).vertices.cpu()
    finally:
        model.to("cpu")
    torch.testing.assert_close(out, model(identity, expression).vertices, atol=1e-4, rtol=0)


def test_projection_is_the_camera_of_the_coefficients():
    from facecast.recon.model.coeffs import coeffs_camera, project_points

    gen = torch.Generator().manual_seed(1)
    points = torch.randn(3, 20, 3, generator=gen) + torch.tensor([0.0, 0.0, -50.0])
    focal, principal = torch.tensor([500.0, 640.0, 800.0]), torch.rand(3, 2, generator=gen) * 300
    expected = coeffs_camera(focal, principal, (1, 1)).project(points)
    assert torch.allclose(project_points(points, focal, principal), expected, atol=1e-4)
    with pytest.raises(ValueError, match="principal"):
        project_points(points, focal, principal[:2])


def test_a_kept_identity_gives_the_same_meshes(model):
    gen = torch.Generator().manual_seed(2)
    identity = torch.randn(1, 100, generator=gen)
    expression, rotation = torch.rand(4, 53, generator=gen), torch.randn(4, 3, generator=gen) * 0.2
    translation = torch.randn(4, 3, generator=gen)
    full = model(identity.expand(4, -1), expression, rotation, translation).vertices
    kept = model.expressed(model.identity_shape(identity), expression, rotation, translation)
    assert torch.allclose(full, kept, atol=1e-5)
    with pytest.raises(ValueError, match="shape must have shape"):
        model.expressed(model.identity_shape(identity)[:, :10], expression)
