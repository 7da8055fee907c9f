"""SH lighting constants, lights, normals, texture sampling, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facecast.render.shading import (
    SH_CONSTANTS,
    ambient_light,
    directional_light,
    face_normals,
    irradiance,
    irradiance_grouped,
    sh_basis,
    texture_at,
    vertex_normals,
)

OCTAHEDRON = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                          dtype=torch.float64)
# Counter-clockwise seen from outside.
OCTAHEDRON_FACES = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                                 [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])


def test_sh_constants_are_the_lambertian_convolved_real_basis():
    c0 = 1 / (2 * math.sqrt(math.pi))
    expected = [c0, 2 / 3 * math.sqrt(3) * c0, 2 / 3 * math.sqrt(3) * c0, 2 / 3 * math.sqrt(3) * c0,
                math.sqrt(15) * c0 / 4, math.sqrt(15) * c0 / 4, math.sqrt(5) * c0 / 8, math.sqrt(15) * c0 / 4,
                math.sqrt(15) * c0 / 8]
    assert SH_CONSTANTS == pytest.approx(expected, rel=1e-12)
    z = sh_basis(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(z, torch.tensor([expected[0], 0, expected[2], 0, 0, 0, 2 * expected[6], 0, 0],
                                               dtype=torch.float64))
    # Y = H * pi / A_l is orthonormal on the sphere (checked on a dense Fibonacci sphere).
    n = 20000
    k = torch.arange(n, dtype=torch.float64) + 0.5
    polar, azimuth = torch.acos(1 - 2 * k / n), math.pi * (1 + 5 ** 0.5) * k
    dirs = torch.stack([polar.sin() * azimuth.cos(), polar.sin() * azimuth.sin(), polar.cos()], -1)
    y = sh_basis(dirs) * torch.tensor([1.0] + [1.5] * 3 + [4.0] * 5, dtype=torch.float64)
    gram = y.T @ y * (4 * math.pi / n)
    torch.testing.assert_close(gram, torch.eye(9, dtype=torch.float64), rtol=0, atol=2e-3)


def test_ambient_and_directional_light_values():
    normals = F.normalize(torch.randn(1, 50, 3, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(irradiance(normals, ambient_light(1, 0.7, dtype=torch.float64)),
                               torch.full((1, 50, 3), 0.7, dtype=torch.float64))
    d = torch.tensor([[0.0, 0.6, 0.8]], dtype=torch.float64)
    light = directional_light(d, intensity=1.0, ambient=0.0)
    facing, away = irradiance(torch.stack([d, -d], 1), light)[0, :, 0]
    # 2nd-order SH of max(0, cos): (1 + 2 + 5/4) / 4 towards the light, (1 - 2 + 5/4) / 4 away.
    assert float(facing) == pytest.approx(1.0625, abs=1e-12)
    assert float(away) == pytest.approx(0.0625, abs=1e-12)


def test_grouped_irradiance_equals_per_image_irradiance():
    g = torch.Generator().manual_seed(0)
    normals = F.normalize(torch.randn(30, 3, generator=g, dtype=torch.float64), dim=-1)
    light = torch.randn(3, 9, 3, generator=g, dtype=torch.float64)
    grouped = irradiance_grouped(normals, light, [10, 0, 20])
    expected = torch.cat([irradiance(normals[None, :10], light[:1])[0], irradiance(normals[None, 10:], light[2:])[0]])
    torch.testing.assert_close(grouped, expected)


def test_vertex_normals_are_outward_and_area_weighted():
    normals = vertex_normals(OCTAHEDRON[None], OCTAHEDRON_FACES)[0]
    torch.testing.assert_close(normals, OCTAHEDRON)
    areas = face_normals(OCTAHEDRON[None], OCTAHEDRON_FACES)[0].norm(dim=-1) / 2
    torch.testing.assert_close(areas, torch.full((8,), math.sqrt(3) / 2, dtype=torch.float64))
    # A big and a small face sharing vertex 0: the big one dominates the vertex normal.
    vertices = torch.tensor([[[0.0, 0, 0], [10, 0, 0], [0, 10, 0], [-1, 0, 0], [0, 0, 1]]], dtype=torch.float64)
    n = vertex_normals(vertices, torch.tensor([[0, 1, 2], [0, 4, 3]]))[0, 0]
    assert float(n[2]) > 0.99


def test_ict_normals_point_out_of_the_head(model):
    normals = vertex_normals(model.neutral[None], model.triangles(("head",)))[0]
    nose = int(model.neutral[:, 2].argmax())
    top = int(model.neutral[:, 1].argmax())
    assert float(normals[nose, 2]) > 0.9 and float(normals[top, 1]) > 0.9


def test_texture_sampling_matches_grid_sample():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 5, 7, generator=g, dtype=torch.float64)
    uv = torch.rand(40, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1  # some outside [0, 1]: border
    which = torch.randint(0, 2, (40,), generator=g)
    ours = texture_at(image, uv, which)
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], -1)
    ref = F.grid_sample(image, grid.view(1, 40, 1, 2).expand(2, -1, -1, -1), mode="bilinear",
                        padding_mode="border", align_corners=False)[:, :, :, 0]  # (2, 3, 40)
    torch.testing.assert_close(ours, ref[which, :, torch.arange(40)])


def test_shading_gradients():
    g = torch.Generator().manual_seed(1)
    vertices = OCTAHEDRON[None] + 0.1 * torch.rand(1, 6, 3, generator=g, dtype=torch.float64)
    light = torch.randn(1, 9, 3, generator=g, dtype=torch.float64)

    def f(v, lt):
        normals = vertex_normals(v, OCTAHEDRON_FACES)[0]
        return irradiance_grouped(normals, lt, [6])

    assert torch.autograd.gradcheck(f, (vertices.requires_grad_(), light.requires_grad_()))


def test_shading_errors():
    with pytest.raises(ValueError, match=r"light must have shape \(\*, 9, 3\)"):
        irradiance(torch.zeros(1, 4, 3), torch.zeros(1, 8, 3))
    with pytest.raises(ValueError, match="light has batch size 3"):
        irradiance(torch.zeros(2, 4, 3), torch.zeros(3, 9, 3))
    with pytest.raises(ValueError, match=r"direction must have shape \(\*, 3\)"):
        directional_light(torch.zeros(3))
