"""``Renderer``: vertices + camera + albedo + SH light -> image, mask, depth (differentiable).

The steps, each its own module: project (:mod:`.cameras`), find the visible face
per pixel (:mod:`.rasterize` or :mod:`.backends.pytorch3d`), recompute barycentrics
with autograd, interpolate attributes (:mod:`.interpolate`), shade (:mod:`.shading`),
optionally soften the silhouette (:mod:`.silhouette`), composite over a background.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .cameras import OrthographicCamera, PerspectiveCamera
from .interpolate import face_attributes_at, vertex_attributes_at
from .rasterize import (
    CHUNK_PAIRS,
    Z_NEAR,
    Foreground,
    Fragments,
    covered_samples,
    fragments_from_samples,
    visible_faces,
)
from .shading import UVTexture, check_light, check_texture, irradiance_grouped, sh_basis, texture_at, vertex_normals
from .silhouette import face_neighbours, soft_silhouette
from .validation import check_faces, check_finite, check_tensor

BACKENDS = ("auto", "torch", "pytorch3d")
SHADINGS = ("pixel", "vertex")


@dataclass(frozen=True)
class RendererConfig:
    """How :class:`Renderer` draws.

    backend: ``"torch"`` (pure PyTorch), ``"pytorch3d"`` (its rasterizer finds visibility;
        must be installed) or ``"auto"`` (pytorch3d for CUDA tensors when importable, else torch:
        see :func:`resolve_backend`).
    cull_backfaces: skip faces turned away from the camera (see :mod:`.rasterize`).
    shading: ``"pixel"`` interpolates albedo and normals and lights every pixel;
        ``"vertex"`` lights vertices and interpolates colours (Gouraud; cheaper, blurrier).
    soft_sigma: ``None`` for a hard mask, else the softness in pixels of the
        silhouette (:func:`.silhouette.soft_silhouette`), which then also blends colours.
    z_near: perspective near plane (faces with a vertex nearer are skipped).
    chunk_pairs: memory bound of the torch rasterizer (see :func:`.rasterize.visible_faces`).
    cpu_images_per_pass: on CPU, larger batches are rendered this many images at a time
        (same results and gradients; smaller working sets stay in cache: ~25 % faster at
        batch 64). On GPUs the whole batch goes at once.
    """

    backend: str = "auto"
    cull_backfaces: bool = True
    shading: str = "pixel"
    soft_sigma: float | None = None
    z_near: float = Z_NEAR
    chunk_pairs: int = CHUNK_PAIRS
    cpu_images_per_pass: int = 4

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.shading not in SHADINGS:
            raise ValueError(f"shading must be one of {SHADINGS}, got {self.shading!r}")
        if self.soft_sigma is not None and not self.soft_sigma > 0:
            raise ValueError(f"soft_sigma must be None or > 0 pixels, got {self.soft_sigma}")
        if self.chunk_pairs < 1 or self.cpu_images_per_pass < 1:
            raise ValueError(f"chunk_pairs and cpu_images_per_pass must be >= 1, got {self.chunk_pairs}, "
                             f"{self.cpu_images_per_pass}")


class RenderOutput(NamedTuple):
    """image ``(B, H, W, 3)``: shaded colour composited over the background.
    mask ``(B, H, W)``: coverage in [0, 1] (0/1, or soft at the silhouette with ``soft_sigma``).
    depth ``(B, H, W)``: camera-frame depth of the visible surface, 0 where not covered.
    fragments: the :class:`Fragments` behind them."""

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    fragments: Fragments


def resolve_backend(name: str, device: torch.device | str = "cpu") -> str:
    """``"torch"`` or ``"pytorch3d"`` for a configured backend name and the tensors' device.

    ``"auto"`` takes pytorch3d only for CUDA tensors and when it imports: on the CPU its rasterizer is
    brute force (8-13 s a 224 px image; its binned mode is not implemented there) against ~30-60 ms for
    the torch backend, so a CPU run never picks it by itself.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "torch" or (name == "auto" and torch.device(device).type != "cuda"):
        return "torch"
    try:
        importlib.import_module("pytorch3d.renderer")
    except ImportError as exc:
        if name == "pytorch3d":
            raise ImportError("backend='pytorch3d' needs pytorch3d installed (conda or a source build)") from exc
        return "torch"
    return "pytorch3d"


def check_background(background: torch.Tensor | None, batch: int, height: int, width: int) -> torch.Tensor | None:
    """``None``, or the background as ``(B|1, H|1, W|1, 3)`` from ``(3,)``, ``(B, 3)`` or ``(B, H, W, 3)``."""
    if background is None:
        return None
    if not isinstance(background, torch.Tensor):
        raise TypeError(f"background must be a torch.Tensor, got {type(background).__name__}")
    if background.shape == (3,):
        return background.view(1, 1, 1, 3)
    if background.ndim == 2 and background.shape[1] == 3 and background.shape[0] in (1, batch):
        return background[:, None, None, :]
    if background.ndim == 4 and background.shape[0] in (1, batch) and background.shape[3] == 3 \
            and tuple(background.shape[1:3]) in ((height, width), (1, 1)):
        return background
    raise ValueError(f"background must be (3,), (B, 3) or (B, {height}, {width}, 3) with B = {batch}, "
                     f"got {tuple(background.shape)}")


def composite(colour: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor | None) -> torch.Tensor:
    """``colour (B, H, W, 3) * alpha + background * (1 - alpha)``.

    background: ``None`` (black), ``(3,)``, ``(B, 3)`` colours, or ``(B, H, W, 3)`` / ``(1, H, W, 3)`` images.
    """
    background = check_background(background, *alpha.shape)
    if background is None:
        return colour * alpha[..., None]
    a = alpha[..., None]
    return colour * a + background.to(colour) * (1.0 - a)


def _rows(value, start: int, stop: int, batch: int):
    """Images ``start:stop`` of a batched input (inputs of batch 1 are shared)."""
    if value is None:
        return None
    if isinstance(value, UVTexture):
        return UVTexture(_rows(value.image, start, stop, batch), value.corner_uvs)
    return value[start:stop] if value.shape[0] == batch and batch > 1 else value


class Renderer:
    """Differentiable mesh renderer; call it as ``renderer(vertices, faces, camera, albedo, light)``."""

    def __init__(self, config: RendererConfig | None = None) -> None:
        self.config = config or RendererConfig()
        self.backend = resolve_backend(self.config.backend)  # for CPU tensors; CUDA ones: see _visible_faces
        self._neighbours: tuple[torch.Tensor, torch.Tensor] | None = None  # (faces, face_neighbours)

    def __call__(self, vertices: torch.Tensor, faces: torch.Tensor, camera: PerspectiveCamera | OrthographicCamera,
                 albedo: torch.Tensor | UVTexture, light: torch.Tensor | None = None,
                 background: torch.Tensor | None = None) -> RenderOutput:
        """Render ``B`` meshes sharing ``faces``.

        vertices: ``(B, V, 3)`` world positions (cm). faces: ``(F, 3)`` long.
        camera: batch 1 or B. albedo: per-vertex ``(B, V, 3)`` / ``(1, V, 3)`` in [0, 1], or a
        :class:`UVTexture`. light: SH coefficients ``(B, 9, 3)`` / ``(1, 9, 3)`` (see
        :mod:`.shading`), or ``None`` for unlit albedo. background: see :func:`composite`.
        """
        faces, camera = self._check(vertices, faces, camera)
        batch = vertices.shape[0]
        albedo = self._check_albedo(albedo, batch, vertices.shape[1], faces.shape[0])
        light = None if light is None else check_light(light, batch)
        background = check_background(background, batch, *camera.image_size)
        step = self.config.cpu_images_per_pass if vertices.device.type == "cpu" else batch
        if batch <= step:
            return self._render(vertices, faces, camera, albedo, light, background)
        parts = [self._render(*(_rows(x, s, s + step, batch) for x in (vertices,)), faces,
                              camera.rows(s, s + step),
                              *(_rows(x, s, s + step, batch) for x in (albedo, light, background)))
                 for s in range(0, batch, step)]
        fragments = Fragments(*(torch.cat(field) for field in zip(*(p.fragments for p in parts))))
        return RenderOutput(*(torch.cat(field) for field in zip(*(p[:3] for p in parts))), fragments)

    def _render(self, vertices, faces, camera, albedo, light, background) -> RenderOutput:
        screen = camera.to_screen(vertices)
        check_finite("projected vertices (a vertex at camera depth 0?)", screen)
        pix_to_face = self._visible_faces(screen.detach(), faces, camera)
        fg, depth = covered_samples(screen, faces, pix_to_face, camera.is_perspective)
        fragments = fragments_from_samples(fg, depth, pix_to_face)
        batch, height, width = pix_to_face.shape
        colour = vertices.new_zeros(batch * height * width, 3)
        colour = colour.index_put((fg.pixel,), self._shade(vertices, faces, fg, albedo, light))
        mask = fragments.mask.to(vertices.dtype)
        if self.config.soft_sigma is not None:
            soft = soft_silhouette(screen, faces, fragments, self.config.soft_sigma, self._face_neighbours(faces))
            mask, colour = soft.alpha, colour.index_select(0, soft.source.reshape(-1))
        image = composite(colour.view(batch, height, width, 3), mask, background)
        depth = vertices.new_zeros(batch * height * width).index_put((fg.pixel,), depth)
        return RenderOutput(image, mask, depth.view(batch, height, width), fragments)

    def _check(self, vertices, faces, camera):
        check_tensor("vertices", vertices, (None, None, 3))
        if vertices.shape[0] == 0 or vertices.shape[1] == 0:
            raise ValueError(f"vertices must have shape (B, V, 3) with B, V >= 1, got {tuple(vertices.shape)}")
        check_finite("vertices", vertices)
        faces = check_faces(faces, vertices.shape[1]).to(vertices.device)
        if not isinstance(camera, (PerspectiveCamera, OrthographicCamera)):
            raise TypeError(f"camera must be a PerspectiveCamera or OrthographicCamera, got {type(camera).__name__}")
        if camera.batch_size not in (1, vertices.shape[0]):
            raise ValueError(f"camera has batch size {camera.batch_size} but vertices have batch size "
                             f"{vertices.shape[0]}")
        if camera.dtype != vertices.dtype or camera.device != vertices.device:
            raise ValueError(f"camera is {camera.dtype} on {camera.device} but vertices are {vertices.dtype} "
                             f"on {vertices.device}; use camera.to(...)")
        return faces, camera.expand(vertices.shape[0])

    @staticmethod
    def _check_albedo(albedo, batch: int, n_vertices: int, n_faces: int):
        if isinstance(albedo, UVTexture):
            return check_texture(albedo, batch, n_faces)
        check_tensor("albedo", albedo, (None, n_vertices, 3))
        if albedo.shape[0] not in (1, batch):
            raise ValueError(f"albedo has batch size {albedo.shape[0]} but vertices have batch size {batch}")
        return albedo.expand(batch, -1, -1)

    def _visible_faces(self, screen: torch.Tensor, faces: torch.Tensor, camera) -> torch.Tensor:
        options = dict(perspective=camera.is_perspective, cull_backfaces=self.config.cull_backfaces,
                       z_near=self.config.z_near)
        backend = self.backend if screen.device.type != "cuda" else resolve_backend(self.config.backend, screen.device)
        if backend == "pytorch3d":
            from .backends import pytorch3d as p3d

            return p3d.visible_faces(screen, faces, camera.image_size, **options)
        return visible_faces(screen, faces, camera.image_size, chunk_pairs=self.config.chunk_pairs, **options)

    def _face_neighbours(self, faces: torch.Tensor) -> torch.Tensor:
        cached = self._neighbours
        if cached is None or cached[0].shape != faces.shape or cached[0].device != faces.device \
                or not torch.equal(cached[0], faces):
            cached = self._neighbours = (faces.clone(), face_neighbours(faces))
        return cached[1]

    def _shade(self, vertices: torch.Tensor, faces: torch.Tensor, fg: Foreground,
               albedo: torch.Tensor | UVTexture, light: torch.Tensor | None) -> torch.Tensor:
        """Colours ``(N, 3)`` of the covered pixels (inputs already checked and expanded to the batch)."""
        batch = vertices.shape[0]
        per_vertex: list[torch.Tensor] = []
        if isinstance(albedo, UVTexture):
            uv = face_attributes_at(albedo.corner_uvs[None].expand(batch, -1, -1, -1), fg)
            pixel_albedo = texture_at(albedo.image, uv, fg.image)
        else:
            per_vertex.append(albedo)
        if light is not None:
            normals = vertex_normals(vertices, faces)
            per_vertex.append(torch.bmm(sh_basis(normals), light) if self.config.shading == "vertex" else normals)
        values = vertex_attributes_at(torch.cat(per_vertex, dim=-1), faces, fg) if per_vertex else None
        if isinstance(albedo, UVTexture):
            colour, rest = pixel_albedo, values
        else:
            colour, rest = values[:, :3], values[:, 3:]
        if light is None:
            return colour
        if self.config.shading == "vertex":
            return colour * rest
        normal = rest / (rest.square().sum(-1, keepdim=True) + 1e-12).sqrt()
        counts = torch.bincount(fg.image, minlength=batch).tolist()  # fg pixels are ordered by image
        return colour * irradiance_grouped(normal, light, counts)
