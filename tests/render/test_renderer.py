"""Renderer: gradients end to end, compositing, options, input errors, memory over repeated calls."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import torch

from facecast.render.cameras import OrthographicCamera, PerspectiveCamera
from facecast.render.renderer import Renderer, RendererConfig, composite
from facecast.render.shading import UVTexture, ambient_light, directional_light

TORCH = RendererConfig(backend="torch")
# A tent: a square of side 2 cm with a raised, off-centre apex; four triangles, open boundary.
TENT = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.05, 0.1], [0.95, 1.0, 0.0], [-1.02, 0.97, -0.1],
                     [0.13, -0.07, 0.6]], dtype=torch.float64)
TENT_FACES = torch.tensor([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])


def tent_camera(dtype=torch.float64):
    return PerspectiveCamera.front((12, 12), distance=10.0, focal=41.3, dtype=dtype)


def tent_inputs():
    g = torch.Generator().manual_seed(0)
    albedo = 0.3 + 0.6 * torch.rand(1, 5, 3, generator=g, dtype=torch.float64)
    light = directional_light(torch.tensor([[0.3, 0.5, 1.0]], dtype=torch.float64), 0.6, 0.4)
    light = light + 0.05 * torch.randn(1, 9, 3, generator=g, dtype=torch.float64)
    return TENT[None].clone(), albedo, light


def assert_visibility_is_locally_constant(renderer, vertices, camera):
    """gradcheck needs pixel centres away from edges: small moves must not change coverage."""
    base = renderer(vertices, TENT_FACES, camera, torch.ones_like(vertices)).fragments.pix_to_face
    g = torch.Generator().manual_seed(3)
    for _ in range(10):
        moved = vertices + 1e-4 * torch.randn(vertices.shape, generator=g, dtype=vertices.dtype)
        assert torch.equal(renderer(moved, TENT_FACES, camera, torch.ones_like(vertices)).fragments.pix_to_face, base)
    assert 40 < int((base >= 0).sum()) < 144  # some covered pixels, some background


@pytest.mark.parametrize("shading", ["pixel", "vertex"])
@pytest.mark.parametrize("soft_sigma", [None, 0.7])
def test_gradcheck_through_rasterize_interpolate_shade(shading, soft_sigma):
    renderer = Renderer(RendererConfig(backend="torch", shading=shading, soft_sigma=soft_sigma))
    camera = tent_camera()
    vertices, albedo, light = tent_inputs()
    assert_visibility_is_locally_constant(renderer, vertices, camera)
    background = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)

    def render(v, a, lt):
        out = renderer(v, TENT_FACES, camera, a, lt, background)
        # A hard mask is piecewise constant (no grad); gradcheck's fast mode wants differentiable outputs.
        return (out.image, out.depth) if soft_sigma is None else (out.image, out.mask, out.depth)

    # fast_mode compares random projections u^T J v of the analytic and numeric Jacobians.
    assert torch.autograd.gradcheck(render, (vertices.requires_grad_(), albedo.requires_grad_(),
                                             light.requires_grad_()), fast_mode=True)


def test_soft_mask_gives_boundary_gradients_and_hard_mask_does_not():
    camera = tent_camera()
    vertices = TENT[None].clone().requires_grad_()
    albedo = torch.ones(1, 5, 3, dtype=torch.float64)
    hard = Renderer(TORCH)(vertices, TENT_FACES, camera, albedo).mask.sum()
    assert not hard.requires_grad
    soft = Renderer(RendererConfig(backend="torch", soft_sigma=0.5))(vertices, TENT_FACES, camera, albedo).mask
    partial = (soft > 0) & (soft < 1)
    assert int(partial.sum()) > 10
    soft.sum().backward()
    # Growing the square grows the mask: the gradient pushes the outer corners outwards.
    outward = (vertices.grad[0, :4, :2] * TENT[:4, :2]).sum(-1)
    assert bool((outward > 0).all())


def test_unlit_albedo_background_image_and_depth():
    camera = tent_camera()
    vertices = TENT[None].clone()
    albedo = torch.full((1, 5, 3), 0.5, dtype=torch.float64)
    background = torch.rand(1, 12, 12, 3, dtype=torch.float64)
    out = Renderer(TORCH)(vertices, TENT_FACES, camera, albedo, None, background)
    mask = out.mask[0].bool()
    torch.testing.assert_close(out.image[0][mask], torch.full((int(mask.sum()), 3), 0.5, dtype=torch.float64))
    torch.testing.assert_close(out.image[0][~mask], background[0][~mask])
    assert bool((out.depth[0][mask] > 9.3).all() and (out.depth[0][mask] < 10.2).all())
    assert bool((out.depth[0][~mask] == 0).all())
    # Ambient light of intensity 0.8 scales the albedo exactly.
    lit = Renderer(TORCH)(vertices, TENT_FACES, camera, albedo, ambient_light(1, 0.8, dtype=torch.float64))
    torch.testing.assert_close(lit.image[0][mask], torch.full((int(mask.sum()), 3), 0.4, dtype=torch.float64))


def test_texture_albedo_matches_vertex_albedo_for_a_linear_texture():
    # Texture whose colour is linear in u: red = u. UVs of each corner = its vertex's u.
    size = 64
    u = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    image = torch.zeros(1, 3, 4, size, dtype=torch.float64)
    image[0, 0] = u
    vertex_u = (TENT[:, 0] + 1.2) / 2.5
    corner_uvs = torch.stack([vertex_u[TENT_FACES], torch.full((4, 3), 0.5, dtype=torch.float64)], -1)
    albedo = torch.zeros(1, 5, 3, dtype=torch.float64)
    albedo[0, :, 0] = vertex_u
    renderer, camera = Renderer(TORCH), tent_camera()
    textured = renderer(TENT[None], TENT_FACES, camera, UVTexture(image, corner_uvs))
    per_vertex = renderer(TENT[None], TENT_FACES, camera, albedo)
    torch.testing.assert_close(textured.image, per_vertex.image, rtol=0, atol=1e-9)


def test_orthographic_camera_and_batch_broadcast(model):
    faces = model.triangles(("head",))
    vertices = model.neutral[None].expand(2, -1, -1)
    camera = OrthographicCamera.front((48, 48), scale=1.5)  # batch 1, used for both images
    out = Renderer(TORCH)(vertices, faces, camera, torch.full((1, vertices.shape[1], 3), 0.5),
                          ambient_light(1))
    assert out.image.shape == (2, 48, 48, 3)
    torch.testing.assert_close(out.image[0], out.image[1])
    assert 0.3 < float(out.mask.mean()) < 0.9


def test_composite_background_forms():
    colour, alpha = torch.ones(2, 3, 4, 3), torch.full((2, 3, 4), 0.25)
    torch.testing.assert_close(composite(colour, alpha, None), torch.full((2, 3, 4, 3), 0.25))
    per_image = composite(colour, alpha, torch.tensor([[0.0, 0, 0], [1.0, 1, 1]]))
    torch.testing.assert_close(per_image[1], torch.ones(3, 4, 3))
    with pytest.raises(ValueError, match="background must be"):
        composite(colour, alpha, torch.zeros(3, 4, 3))


def test_renderer_input_errors():
    renderer, camera = Renderer(TORCH), tent_camera()
    vertices, albedo, light = tent_inputs()
    cases = [
        (dict(vertices=TENT), r"vertices must have shape \(\*, \*, 3\)"),
        (dict(vertices=vertices.expand(2, -1, -1).clone(), camera=PerspectiveCamera.front(
            (12, 12), 10.0, 40.0, batch_size=3, dtype=torch.float64)), "camera has batch size 3"),
        (dict(vertices=vertices.index_fill(1, torch.tensor([2]), float("nan"))), "vertices contains NaN"),
        (dict(vertices=vertices.index_fill(1, torch.tensor([2]), float("inf"))), "vertices contains NaN or inf"),
        (dict(faces=TENT_FACES + 3), "faces index out of range"),
        (dict(faces=TENT_FACES - 1), "faces index out of range"),
        (dict(faces=TENT_FACES[:, :2]), r"faces must have shape \(\*, 3\)"),
        (dict(albedo=albedo[:, :4]), r"albedo must have shape \(\*, 5, 3\)"),
        (dict(albedo=albedo.expand(3, -1, -1)), "albedo has batch size 3"),
        (dict(light=light[:, :4]), r"light must have shape \(\*, 9, 3\)"),
        (dict(light=light.expand(2, -1, -1)), "light has batch size 2"),
        (dict(background=torch.zeros(5, 5, 3)), "background must be"),
        (dict(camera=camera.to(dtype=torch.float32)), "camera is torch.float32"),
    ]
    for change, message in cases:
        args = dict(vertices=vertices, faces=TENT_FACES, camera=camera, albedo=albedo, light=light, background=None)
        args.update(change)
        with pytest.raises(ValueError, match=message):
            renderer(**args)
    with pytest.raises(ValueError, match="image_size must be positive"):
        PerspectiveCamera.front((12, 0), 10.0, 40.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        RendererConfig(backend="opengl")
    with pytest.raises(ValueError, match="soft_sigma must be None or > 0"):
        RendererConfig(soft_sigma=0.0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_memory_does_not_grow_over_repeated_calls(model):
    faces = model.triangles(("head",))
    renderer = Renderer(RendererConfig(backend="torch", soft_sigma=0.5))
    camera = PerspectiveCamera.front((64, 64), 80.0, 160.0)
    albedo = torch.full((2, model.n_vertices, 3), 0.6, requires_grad=True)
    light = ambient_light(2, 0.9).requires_grad_()

    def step():
        vertices = model.neutral[None].expand(2, -1, -1).clone().requires_grad_()
        out = renderer(vertices, faces, camera, albedo, light)
        (out.image.mean() + out.mask.mean()).backward()

    for _ in range(3):
        step()
    gc.collect()
    tensors_before = sum(type(o) in (torch.Tensor, torch.nn.Parameter) for o in gc.get_objects())
    rss_before = _rss_bytes()
    for _ in range(20):
        step()
    gc.collect()
    tensors_after = sum(type(o) in (torch.Tensor, torch.nn.Parameter) for o in gc.get_objects())
    assert tensors_after <= tensors_before
    # One leaked call would keep its graph (> 4 MB at 64 px, batch 2); 20 would be > 80 MB.
    assert _rss_bytes() - rss_before < 40 * 1024 * 1024
    tracemalloc.start()  # slows Python down, so only over a few calls
    snapshot = tracemalloc.take_snapshot()
    for _ in range(4):
        step()
    gc.collect()
    growth = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snapshot, "filename"))
    tracemalloc.stop()
    assert growth < 64 * 1024  # Python-side allocations (caches, lists) do not accumulate


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_memory_does_not_grow_over_repeated_calls(model):
    cuda_model = type(model)(model.data).to("cuda")
    faces = cuda_model.triangles(("head",))
    renderer = Renderer(RendererConfig(backend="torch", soft_sigma=0.5))
    camera = PerspectiveCamera.front((128, 128), 80.0, 320.0, device="cuda")
    albedo = torch.full((4, cuda_model.n_vertices, 3), 0.6, device="cuda", requires_grad=True)

    def step():
        vertices = cuda_model.neutral[None].expand(4, -1, -1).clone().requires_grad_()
        out = renderer(vertices, faces, camera, albedo, ambient_light(4, 0.9, device="cuda"))
        (out.image.mean() + out.mask.mean()).backward()

    step()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before


def test_cpu_passes_of_a_few_images_give_the_same_result_and_gradients():
    g = torch.Generator().manual_seed(2)
    batch = 5
    vertices = TENT[None] + 0.05 * torch.randn(batch, 5, 3, generator=g, dtype=torch.float64)
    albedo = torch.rand(batch, 5, 3, generator=g, dtype=torch.float64)
    light = directional_light(torch.randn(batch, 3, generator=g, dtype=torch.float64))
    background = torch.rand(batch, 12, 12, 3, generator=g, dtype=torch.float64)
    camera = PerspectiveCamera.front((12, 12), 10.0, 41.3, batch_size=batch, dtype=torch.float64)
    results = []
    for per_pass in (2, 5):
        renderer = Renderer(RendererConfig(backend="torch", soft_sigma=0.6, cpu_images_per_pass=per_pass))
        v, a, lt = (x.clone().requires_grad_() for x in (vertices, albedo, light))
        out = renderer(v, TENT_FACES, camera, a, lt, background)
        (out.image.square().sum() + out.mask.sum() + out.depth.sum()).backward()
        results.append((out, v.grad, a.grad, lt.grad))
    (split, *split_grads), (whole, *whole_grads) = results
    for mine, theirs in zip(list(split[:3]) + list(split.fragments) + split_grads,
                            list(whole[:3]) + list(whole.fragments) + whole_grads):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)
    assert split.image.shape == (batch, 12, 12, 3)


def test_offscreen_and_empty_meshes_render_only_background():
    camera = tent_camera()
    background = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    far_away = (TENT[None] + torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64)).requires_grad_()
    for faces in (TENT_FACES, torch.zeros(0, 3, dtype=torch.long)):
        for sigma in (None, 0.5):
            renderer = Renderer(RendererConfig(backend="torch", soft_sigma=sigma))
            out = renderer(far_away, faces, camera, torch.ones(1, 5, 3, dtype=torch.float64),
                           ambient_light(1, dtype=torch.float64), background)
            assert float(out.mask.sum()) == 0 and bool((out.fragments.pix_to_face == -1).all())
            torch.testing.assert_close(out.image, background.expand(1, 12, 12, 3))
