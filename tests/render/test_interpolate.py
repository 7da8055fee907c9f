"""Attribute interpolation over fragments: values, background, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from facecast.render.interpolate import interpolate_face_attributes, interpolate_vertex_attributes
from facecast.render.rasterize import rasterize


def quad_scene(dtype=torch.float64):
    """A square of two triangles covering part of an 8x10 image, at depths 2-3."""
    screen = torch.tensor([[[1.3, 1.2, 2.0], [8.7, 1.4, 2.5], [8.6, 6.8, 3.0], [1.1, 6.7, 2.2]]], dtype=dtype)
    faces = torch.tensor([[0, 3, 2], [0, 2, 1]])
    return screen, faces, rasterize(screen, faces, (8, 10))


def test_linear_attribute_is_reproduced_in_screen_space_for_orthographic():
    screen, faces, _ = quad_scene()
    fragments = rasterize(screen, faces, (8, 10), perspective=False)
    # An attribute linear in screen x, y is interpolated exactly by screen-space barycentrics.
    attributes = screen[..., :2] * torch.tensor([2.0, -1.0], dtype=screen.dtype) + 0.25
    out = interpolate_vertex_attributes(attributes, faces, fragments)
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(10), indexing="ij")
    centre = torch.stack([cols, rows], -1).to(screen.dtype) + 0.5
    expected = centre * torch.tensor([2.0, -1.0], dtype=screen.dtype) + 0.25
    mask = fragments.mask[0]
    assert int(mask.sum()) > 30
    torch.testing.assert_close(out[0][mask], expected[mask])
    assert bool((out[0][~mask] == 0).all())


def test_vertex_and_face_corner_attributes_agree():
    screen, faces, fragments = quad_scene()
    g = torch.Generator().manual_seed(0)
    attributes = torch.rand(1, 4, 5, generator=g, dtype=torch.float64)
    per_vertex = interpolate_vertex_attributes(attributes, faces, fragments)
    per_corner = interpolate_face_attributes(attributes[0][faces], fragments)
    torch.testing.assert_close(per_vertex, per_corner)
    unbatched = interpolate_vertex_attributes(attributes[0], faces, fragments)
    torch.testing.assert_close(unbatched, per_vertex)


def test_gradients_to_attributes_and_vertices():
    screen, faces, _ = quad_scene()
    p = rasterize(screen, faces, (8, 10)).pix_to_face
    attributes = torch.rand(1, 4, 2, dtype=torch.float64)

    def f(s, a):
        from facecast.render.rasterize import fragments_from_faces

        return interpolate_vertex_attributes(a, faces, fragments_from_faces(s, faces, p))

    assert torch.autograd.gradcheck(f, (screen.clone().requires_grad_(), attributes.requires_grad_()))


def test_interpolation_errors():
    screen, faces, fragments = quad_scene()
    with pytest.raises(ValueError, match="attributes have 3 vertices"):
        interpolate_vertex_attributes(torch.zeros(1, 3, 2, dtype=torch.float64), faces, fragments)
    with pytest.raises(ValueError, match="attributes has batch size 2"):
        interpolate_vertex_attributes(torch.zeros(2, 4, 2, dtype=torch.float64), faces, fragments)
    with pytest.raises(ValueError, match=r"attributes must have shape \(B, F, 3, C\)"):
        interpolate_face_attributes(torch.zeros(1, 2, 4, 2), fragments)
    with pytest.raises(ValueError, match="attributes have 1 faces"):
        interpolate_face_attributes(torch.zeros(1, 1, 3, 2), fragments)
