"""Visibility from pytorch3d's mesh rasterizer, behind the same interface as the torch path.

pytorch3d is optional (no PyPI wheel); it is imported inside the functions only.
This backend replaces :func:`facecast.render.rasterize.visible_faces`: it returns
``pix_to_face (B, H, W)`` and the renderer then recomputes barycentrics and depth
with autograd exactly as for the torch backend, so both give the same gradients.

Conventions: pytorch3d's rasterizer works in its NDC space, +X left, +Y up, the
shorter image side spanning [-1, 1], and the pixel in column ``j`` (row ``i``) has its
centre at ``x = (W - 2 j - 1) / s``, ``y = (H - 2 i - 1) / s`` with ``s = min(H, W)``.
Our screen coordinates (x right, y down, centres at ``j + 0.5``) therefore map by
``x_ndc = (W - 2 x) / s``, ``y_ndc = (H - 2 y) / s``, keeping the camera depth as z (which
is what ``MeshRasterizer`` feeds the rasterizer, and what perspective correction
needs). That is the screen-space conversion of a ``PerspectiveCameras(in_ndc=False)``
done once here, so no pytorch3d camera object is needed. Near-plane clipping and
back-face culling are applied by dropping faces beforehand (our sign convention,
not pytorch3d's), then face indices are mapped back.
"""

from __future__ import annotations

import importlib.util

import torch

from ..rasterize import Z_NEAR
from ..validation import check_image_size


def is_available() -> bool:
    """Whether ``import pytorch3d`` can work (without importing it)."""
    return importlib.util.find_spec("pytorch3d") is not None


def screen_to_ndc(screen: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``(B, V, 3)`` pixel x, pixel y, depth -> pytorch3d NDC x (left), y (up), depth."""
    height, width = check_image_size(image_size)
    scale = 2.0 / min(height, width)
    x = (width / 2.0 - screen[..., 0]) * scale
    y = (height / 2.0 - screen[..., 1]) * scale
    return torch.stack([x, y, screen[..., 2]], dim=-1)


def _drawable(screen: torch.Tensor, faces: torch.Tensor, perspective: bool, cull_backfaces: bool,
              z_near: float) -> torch.Tensor:
    """``(B, F)`` bool: faces to hand to pytorch3d (the torch backend's skip rules)."""
    v = screen[:, faces]  # (B, F, 3, 3)
    x, y, z = v.unbind(-1)
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (y[..., 1] - y[..., 0]) * (x[..., 2] - x[..., 0])
    keep = area < 0 if cull_backfaces else area != 0
    if perspective:
        keep &= (z > z_near).all(dim=-1)
    return keep


@torch.no_grad()
def visible_faces(screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                  perspective: bool = True, cull_backfaces: bool = False, z_near: float = Z_NEAR,
                  bin_size: int | None = None, max_faces_per_bin: int | None = None) -> torch.Tensor:
    """``pix_to_face (B, H, W)`` long (-1 = background) computed by pytorch3d.

    Same inputs and meaning as :func:`facecast.render.rasterize.visible_faces`;
    ``bin_size`` / ``max_faces_per_bin`` go to pytorch3d's coarse-to-fine rasterizer
    (``None``: pytorch3d's heuristics; ``bin_size=0``: naive rasterization).
    """
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    height, width = check_image_size(image_size)
    keep = _drawable(screen, faces, perspective, cull_backfaces, z_near)
    kept = [k.nonzero().squeeze(1) for k in keep]  # original face index of each face given
    ndc = screen_to_ndc(screen.float(), (height, width))
    meshes = Meshes(verts=list(ndc), faces=[faces[k] for k in kept])
    pix_to_face, _, _, _ = rasterize_meshes(
        meshes, image_size=(height, width), blur_radius=0.0, faces_per_pixel=1, bin_size=bin_size,
        max_faces_per_bin=max_faces_per_bin, perspective_correct=perspective,
        clip_barycentric_coords=False, cull_backfaces=False)
    packed = pix_to_face[..., 0]  # index into the packed faces of all meshes
    lookup = torch.cat(kept + [torch.zeros(1, dtype=torch.long, device=screen.device)])
    out = lookup[packed.clamp(min=0)]
    return torch.where(packed >= 0, out, torch.full_like(out, -1))


def to_pytorch3d_cameras(camera):
    """A pytorch3d ``PerspectiveCameras`` equivalent to our :class:`PerspectiveCamera`.

    For users who want pytorch3d's own shaders. OpenCV frame -> pytorch3d view frame flips
    x and y: ``R_p3d = R^T diag(-1, -1, 1)`` (row-vector convention) and
    ``T_p3d = diag(-1, -1, 1) t``; intrinsics go to NDC with ``s = min(H, W)``:
    ``f_ndc = 2 f / s``, ``p_ndc = -(p - (W/2, H/2)) * 2 / s``.
    """
    from pytorch3d.renderer import PerspectiveCameras

    if not camera.is_perspective:
        raise ValueError("to_pytorch3d_cameras supports PerspectiveCamera only")
    height, width = camera.image_size
    flip = torch.tensor([-1.0, -1.0, 1.0], dtype=camera.dtype, device=camera.device)
    rotation = camera.rotation.transpose(1, 2) * flip
    translation = camera.translation * flip
    scale = 2.0 / min(height, width)
    centre = torch.tensor([width / 2.0, height / 2.0], dtype=camera.dtype, device=camera.device)
    return PerspectiveCameras(focal_length=camera.focal * scale,
                              principal_point=-(camera.principal_point - centre) * scale,
                              R=rotation, T=translation, in_ndc=True, device=camera.device)
