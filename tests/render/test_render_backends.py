"""Backend choice, pytorch3d coordinate conversion, and torch/pytorch3d parity (when installed)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from facecast.render.backends import pytorch3d as p3d_backend
from facecast.render.cameras import PerspectiveCamera
from facecast.render.renderer import Renderer, RendererConfig, resolve_backend
from facecast.render.shading import directional_light

HAS_PYTORCH3D = importlib.util.find_spec("pytorch3d") is not None


def pytorch3d_pixel_centre_ndc(index: int, size: int, other: int) -> float:
    """pytorch3d's documented NDC of pixel ``index`` along an axis of ``size`` (+X left / +Y up):
    ``pix_to_non_square_ndc(size - 1 - index, size, other)``."""
    ndc_range = 2.0 * size / other if size > other else 2.0
    offset = ndc_range / 2.0
    return -offset + (ndc_range * (size - 1 - index) + offset) / size


@pytest.mark.parametrize("size", [(8, 8), (6, 10), (10, 6)])
def test_screen_to_ndc_maps_pixel_centres_onto_pytorch3d_pixel_centres(size):
    height, width = size
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    screen = torch.stack([cols + 0.5, rows + 0.5, torch.ones(height, width)], -1).reshape(1, -1, 3).double()
    ndc = p3d_backend.screen_to_ndc(screen, size)[0]
    expected_x = torch.tensor([pytorch3d_pixel_centre_ndc(int(c), width, height) for c in cols.reshape(-1)])
    expected_y = torch.tensor([pytorch3d_pixel_centre_ndc(int(r), height, width) for r in rows.reshape(-1)])
    torch.testing.assert_close(ndc[:, 0], expected_x.double())
    torch.testing.assert_close(ndc[:, 1], expected_y.double())
    torch.testing.assert_close(ndc[:, 2], torch.ones(height * width, dtype=torch.float64))


def test_backend_resolution():
    assert resolve_backend("torch") == "torch"
    assert resolve_backend("auto") == "torch"  # on the CPU even with pytorch3d installed (issue #18: 8-13 s a frame)
    assert resolve_backend("auto", "cuda") == ("pytorch3d" if HAS_PYTORCH3D else "torch")
    assert Renderer(RendererConfig(backend="torch")).backend == "torch"
    if not HAS_PYTORCH3D:
        with pytest.raises(ImportError, match="pytorch3d"):
            Renderer(RendererConfig(backend="pytorch3d"))
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("nvdiffrast")


def test_pytorch3d_backend_skips_the_same_faces_as_the_torch_rasterizer():
    screen = torch.tensor([[[1.0, 1.0, 1.0], [6.0, 1.0, 1.0], [1.0, 6.0, 1.0], [1.0, 6.0, -1.0]]])
    faces = torch.tensor([[0, 2, 1], [0, 1, 2], [0, 3, 1], [0, 0, 1]])  # front, back, behind camera, degenerate
    keep = p3d_backend._drawable(screen, faces, perspective=True, cull_backfaces=True, z_near=1e-3)
    assert keep.tolist() == [[True, False, False, False]]
    keep = p3d_backend._drawable(screen, faces, perspective=False, cull_backfaces=False, z_near=1e-3)
    assert keep.tolist() == [[True, True, True, False]]


def _ict_scene(model, device):
    faces = model.triangles(("head",)).to(device)
    rotation = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.6, 0.0]], device=device)
    vertices = model.to(device)(torch.zeros(2, 100, device=device), torch.zeros(2, 53, device=device),
                                rotation, torch.zeros(2, 3, device=device)).vertices
    camera = PerspectiveCamera.front((224, 224), distance=80.0, focal=560.0, device=device)
    albedo = torch.full((1, vertices.shape[1], 3), 0.7, device=device)
    light = directional_light(torch.tensor([[0.4, 0.5, 1.0]], device=device))
    return vertices, faces, camera, albedo, light


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_pytorch3d_parity_on_the_ict_head(model, device):
    pytest.importorskip("pytorch3d")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    scene = _ict_scene(model, device)
    ours = Renderer(RendererConfig(backend="torch"))(*scene)
    theirs = Renderer(RendererConfig(backend="pytorch3d"))(*scene)
    a, b = ours.mask.bool(), theirs.mask.bool()
    iou = float((a & b).sum()) / float((a | b).sum())
    assert iou >= 0.99
    assert float((ours.image - theirs.image).abs().mean()) <= 1.0 / 255.0


def test_pytorch3d_cameras_project_like_ours():
    pytest.importorskip("pytorch3d")
    g = torch.Generator().manual_seed(0)
    camera = PerspectiveCamera.front((60, 90), distance=50.0, focal=300.0)
    camera = PerspectiveCamera(rotation=camera.rotation, translation=camera.translation + 1.0,
                               principal_point=camera.principal_point + torch.tensor([3.0, -2.0]),
                               focal=torch.tensor([[300.0, 320.0]]), image_size=(60, 90))
    points = (torch.rand(1, 30, 3, generator=g) - 0.5) * 10
    theirs = p3d_backend.to_pytorch3d_cameras(camera).transform_points_ndc(points)[..., :2]
    ours = p3d_backend.screen_to_ndc(camera.to_screen(points), (60, 90))[..., :2]
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


def test_auto_never_picks_pytorch3d_for_cpu_tensors_even_when_it_imports(monkeypatch):
    """Issue #18: with pytorch3d installed, ``auto`` chose its brute-force CPU rasterizer (8-13 s a frame)."""
    import types

    import facecast.render.renderer as renderer

    monkeypatch.setattr(renderer.importlib, "import_module", lambda name: types.ModuleType(name))  # "installed"
    assert renderer.resolve_backend("auto") == "torch"
    assert renderer.resolve_backend("auto", "cuda") == "pytorch3d"
    assert Renderer(RendererConfig()).backend == "torch"
