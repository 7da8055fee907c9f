"""Rasterizer: fast path against the loop reference, known coverage, culling, ties, gradients."""

from __future__ import annotations

import pytest
import torch

from facecast.render.cameras import PerspectiveCamera
from facecast.render.rasterize import fragments_from_faces, rasterize, visible_faces
from facecast.render.rasterize_reference import rasterize_reference


def random_scene(seed: int, dtype=torch.float64, batch=2, n_vertices=40, n_faces=30, size=(24, 32),
                 spread=1.0):
    """Random triangles (some off-screen, some big) with positive depths."""
    g = torch.Generator().manual_seed(seed)
    height, width = size
    xy = torch.rand(batch, n_vertices, 2, generator=g, dtype=dtype) * torch.tensor(
        [width * 1.4, height * 1.4], dtype=dtype) * spread - torch.tensor([width * 0.2, height * 0.2], dtype=dtype)
    z = torch.rand(batch, n_vertices, 1, generator=g, dtype=dtype) * 4 + 1
    faces = torch.randint(0, n_vertices, (n_faces, 3), generator=g)
    return torch.cat([xy, z], dim=-1), faces


def assert_same(fast, ref):
    assert torch.equal(fast.pix_to_face, ref.pix_to_face)
    torch.testing.assert_close(fast.bary.detach(), ref.bary, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.zbuf.detach(), ref.zbuf, rtol=0, atol=1e-12)


@pytest.mark.parametrize("perspective", [True, False])
@pytest.mark.parametrize("cull", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_equals_reference_on_random_meshes(seed, cull, perspective):
    screen, faces = random_scene(seed)
    fast = rasterize(screen, faces, (24, 32), perspective=perspective, cull_backfaces=cull)
    ref = rasterize_reference(screen, faces, (24, 32), perspective=perspective, cull_backfaces=cull)
    assert 0.2 < float(ref.mask.float().mean()) < 1.0  # the scene is neither empty nor trivial
    assert_same(fast, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunking_and_banding_do_not_change_the_result(dtype):
    screen, faces = random_scene(3, dtype=dtype, n_faces=12, size=(40, 50), spread=1.0)
    whole = rasterize(screen, faces, (40, 50))
    for chunk in (1, 7, 64, 500):  # 1 and 7 force every big box to be cut into row bands
        assert torch.equal(rasterize(screen, faces, (40, 50), chunk_pairs=chunk).pix_to_face, whole.pix_to_face)
    ref = rasterize_reference(screen, faces, (40, 50))
    assert torch.equal(whole.pix_to_face, ref.pix_to_face)  # also in float32: same operations, same rounding


def test_fast_equals_reference_on_the_ict_head(model64):
    faces = model64.triangles(("head",))
    rotation = torch.tensor([[0.1, 0.5, 0.05], [-0.2, -0.7, 0.0]], dtype=torch.float64)
    vertices = model64(torch.zeros(2, 100, dtype=torch.float64), torch.zeros(2, 53, dtype=torch.float64),
                       rotation, torch.zeros(2, 3, dtype=torch.float64)).vertices
    camera = PerspectiveCamera.front((96, 96), 80.0, 240.0, dtype=torch.float64)
    screen = camera.expand(2).to_screen(vertices)
    fast = rasterize(screen, faces, (96, 96), cull_backfaces=True)
    ref = rasterize_reference(screen, faces, (96, 96), cull_backfaces=True)
    assert float(fast.mask.float().mean()) > 0.3
    assert_same(fast, ref)
    without_culling = rasterize(screen, faces, (96, 96), cull_backfaces=False)
    assert torch.equal(without_culling.pix_to_face, fast.pix_to_face)  # closed head: back faces are hidden anyway


def test_known_coverage_of_one_triangle():
    # Right triangle with legs along the top and left image edges; pixel centres at +0.5.
    screen = torch.tensor([[[0.0, 0.0, 2.0], [4.0, 0.0, 2.0], [0.0, 4.0, 2.0]]])
    faces = torch.tensor([[0, 2, 1]])  # counter-clockwise in a y-up picture -> front face
    out = rasterize(screen, faces, (5, 5), cull_backfaces=True)
    expected = torch.tensor([[x + y + 1 <= 4 for x in range(5)] for y in range(5)])
    assert torch.equal(out.mask[0], expected)
    assert torch.equal(out.pix_to_face[0][expected], torch.zeros(int(expected.sum()), dtype=torch.long))
    # Barycentrics at pixel (row 1, col 2), centre (2.5, 1.5): weights of vertices 0, 2, 1.
    torch.testing.assert_close(out.bary[0, 1, 2], torch.tensor([0.0, 1.5 / 4, 2.5 / 4]))
    torch.testing.assert_close(out.zbuf[0][expected], torch.full((int(expected.sum()),), 2.0))
    assert bool((out.zbuf[0][~expected] == -1).all())
    assert bool((out.bary[0][~expected] == 0).all())
    back = rasterize(screen, torch.tensor([[0, 1, 2]]), (5, 5), cull_backfaces=True)
    assert not bool(back.mask.any())


def test_perspective_correct_barycentrics():
    # A triangle receding in depth: screen-space weights differ from world-space ones.
    camera = PerspectiveCamera.front((64, 64), 50.0, 400.0, dtype=torch.float64)
    world = torch.tensor([[[-2.0, -2.0, 0.0], [2.0, -2.0, -6.0], [0.0, 2.0, 0.0]]], dtype=torch.float64)
    screen = camera.to_screen(world)
    out = rasterize(screen, torch.tensor([[0, 1, 2]]), (64, 64))
    y, x = 34, 36
    f = out.bary[0, y, x]
    point = (f[:, None] * world[0]).sum(0)  # the world point the weights describe
    ray_hit = camera.project(point[None, None])[0, 0]
    torch.testing.assert_close(ray_hit, torch.tensor([x + 0.5, y + 0.5], dtype=torch.float64))
    depth = camera.transform(point[None, None])[0, 0, 2]
    torch.testing.assert_close(out.zbuf[0, y, x], depth)


def test_nearest_face_wins_and_ties_go_to_the_lower_index():
    square = torch.tensor([[0.0, 0.0], [8.0, 0.0], [8.0, 8.0], [0.0, 8.0]])
    near = torch.cat([square, torch.full((4, 1), 1.0)], 1)
    far = torch.cat([square, torch.full((4, 1), 3.0)], 1)
    screen = torch.cat([far, near])[None]
    faces = torch.tensor([[0, 1, 2], [4, 5, 6], [4, 6, 7]])  # far face first
    out = rasterize(screen, faces, (8, 8))
    assert set(out.pix_to_face[0].unique().tolist()) <= {1, 2}
    same_depth = torch.cat([near, near])[None]
    tie = rasterize(same_depth, torch.tensor([[4, 5, 6], [0, 1, 2]]), (8, 8))
    upper = tie.mask[0] & (torch.arange(8)[None, :] > torch.arange(8)[:, None])
    assert bool((tie.pix_to_face[0][upper] == 0).all())


def test_near_plane_and_offscreen_triangles_are_skipped():
    screen = torch.tensor([[[1.0, 1.0, 1.0], [6.0, 1.0, 1.0], [1.0, 6.0, -1.0],
                            [20.0, 20.0, 1.0], [30.0, 20.0, 1.0], [20.0, 30.0, 1.0]]])
    faces = torch.tensor([[0, 2, 1], [3, 5, 4]])
    assert not bool(rasterize(screen, faces, (8, 8)).mask.any())
    ortho = rasterize(screen, faces, (8, 8), perspective=False)
    assert bool(ortho.mask.any()) and set(ortho.pix_to_face.unique().tolist()) == {-1, 0}


def test_empty_face_list_gives_background():
    screen, _ = random_scene(0)
    out = rasterize(screen, torch.zeros(0, 3, dtype=torch.long), (24, 32))
    assert bool((out.pix_to_face == -1).all()) and out.bary.shape == (2, 24, 32, 3)


@pytest.mark.parametrize("perspective", [True, False])
def test_barycentric_gradients(perspective):
    screen, faces = random_scene(5, n_vertices=9, n_faces=5, size=(10, 12))
    p2f = visible_faces(screen, faces, (10, 12), perspective=perspective)
    assert int(p2f.ge(0).sum()) > 20
    g = torch.Generator().manual_seed(1)
    wb, wz = torch.randn(2, 10, 12, 3, generator=g, dtype=torch.float64), torch.randn(2, 10, 12, generator=g,
                                                                                      dtype=torch.float64)

    def f(s):
        out = fragments_from_faces(s, faces, p2f, perspective)
        return (out.bary * wb).sum() + (out.zbuf * wz).sum()

    assert torch.autograd.gradcheck(f, (screen.clone().requires_grad_(),))


def test_input_errors():
    screen, faces = random_scene(0)
    with pytest.raises(ValueError, match="faces index out of range"):
        rasterize(screen, faces + 100, (8, 8))
    with pytest.raises(ValueError, match="faces index out of range"):
        rasterize(screen, faces - 100, (8, 8))
    with pytest.raises(ValueError, match="screen contains NaN"):
        rasterize(screen.index_fill(1, torch.tensor([3]), float("nan")), faces, (8, 8))
    with pytest.raises(ValueError, match="image_size must be positive"):
        rasterize(screen, faces, (0, 8))
    with pytest.raises(ValueError, match=r"screen must have shape \(\*, \*, 3\)"):
        rasterize(screen[0], faces, (8, 8))
    with pytest.raises(ValueError, match=r"faces must have shape \(\*, 3\)"):
        rasterize(screen, faces[:, :2], (8, 8))
    with pytest.raises(TypeError, match="faces must be an integer tensor"):
        rasterize(screen, faces.float(), (8, 8))
