"""Bake a UV albedo texture of the face from the photo it was fitted to.

For every texel of the face's UV tile (ICT material ``M_Face``, u in [0, 1]) the
surface point is found by rasterizing the mesh in UV space; it is projected into
the photo, and where it is visible (depth test against a render of the head, and
facing the camera) the photo colour divided by the fitted SH shading becomes the
albedo. Elsewhere, and blended in towards grazing angles, the fitted per-vertex
albedo is used, so the back of the texture is plausible skin, not smeared pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecast.recon.model.albedo import AlbedoModel
from facecast.recon.model.coeffs import FaceCoeffs, coeffs_camera
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import triangulate
from facecast.render.interpolate import foreground, vertex_attributes_at
from facecast.render.rasterize import rasterize
from facecast.render.renderer import Renderer, RendererConfig
from facecast.render.shading import irradiance, vertex_normals


@dataclass
class TextureConfig:
    """Texture size (pixels, square), facing threshold and depth tolerance (cm)."""

    size: int = 1024
    min_facing: float = 0.15
    full_facing: float = 0.45
    depth_tolerance: float = 0.6


#: the visibility test renders the head at most this many pixels on its longest side
VISIBILITY_SIDE = 1024


def _uv_layout(model: MorphableModel, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """UV-space screen vertices ``(1, T, 3)``, UV triangles and matching mesh triangles ``(F, 3)``."""
    data = model.data
    face_polys = data.material_face_mask(["M_Face"])
    uv_tris = torch.as_tensor(triangulate(data.face_uvs[face_polys]))
    mesh_tris = torch.as_tensor(triangulate(data.face_vertices[face_polys]))
    uv = torch.as_tensor(data.uvs, dtype=torch.float64)
    screen = torch.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size, torch.ones_like(uv[:, 0])], -1)
    return screen[None], uv_tris, mesh_tris


def _sample(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Bilinear colours ``(N, 3)`` in [0, 1] at renderer-convention pixels ``(N, 2)``."""
    import cv2

    n, width = len(pixels), 1024  # remap maps must be < 32767 rows: lay the points out in rows
    xy = np.zeros((-(-n // width) * width, 2), np.float32)
    xy[:n] = pixels - 0.5
    xy = xy.reshape(-1, width, 2)
    out = cv2.remap(image, xy[..., 0].copy(), xy[..., 1].copy(), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n].astype(np.float32) / 255.0


class TextureBaker:
    """Bakes face textures for one model; the UV layout (rasterized once per texture size), the
    triangles and the albedo model are built on the first bake and reused for every photo after it."""

    def __init__(self, model: MorphableModel, config: TextureConfig = TextureConfig()) -> None:
        self.model, self.config = model, config
        self._layout: tuple | None = None

    def _prepared(self) -> tuple:
        if self._layout is None:
            screen, uv_tris, mesh_tris = _uv_layout(self.model, self.config.size)
            size = self.config.size
            fg = foreground(rasterize(screen.to(torch.float32), uv_tris, (size, size), perspective=False))
            albedo = AlbedoModel.from_data(self.model.data, torch.float32)
            self._layout = fg, mesh_tris, self.model.triangles(("head",)), albedo
        return self._layout

    def bake(self, coeffs: FaceCoeffs, image: np.ndarray) -> np.ndarray:
        """``(S, S, 3)`` uint8 sRGB-ish albedo texture of the ``M_Face`` UV tile (row 0 = v 1).

        coeffs: one face (batch of one) fitted to ``image`` (RGB uint8 ``(H, W, 3)``),
        with lighting and albedo from :mod:`facecast.recon.fit.photometric`.
        """
        if coeffs.batch_size != 1:
            raise ValueError(f"bake_texture takes one face, got a batch of {coeffs.batch_size}")
        config, model = self.config, self.model
        fg, mesh_tris, head, albedo_model = self._prepared()
        c = coeffs.to(model.neutral.dtype)
        with torch.no_grad():
            vertices = model(c.identity, c.expression, c.rotation, c.translation).vertices.to(torch.float32)
            normals = vertex_normals(vertices, head)
            attrs = torch.cat([vertices, normals, albedo_model.vertex_albedo(c.albedo.to(torch.float32))], -1)
            texel = vertex_attributes_at(attrs, mesh_tris, fg)
            position, fallback = texel[:, :3], texel[:, 6:]
            normal = torch.nn.functional.normalize(texel[:, 3:6], dim=-1)
            height, width = image.shape[:2]
            focal, principal = c.focal.to(torch.float32), c.principal.to(torch.float32)
            pixels = coeffs_camera(focal, principal, (height, width)).project(position[None])[0]
            # visibility: depth test against a render of the head, at most VISIBILITY_SIDE pixels wide
            scale = min(1.0, VISIBILITY_SIDE / max(height, width))
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            small = coeffs_camera(focal * scale, principal * scale, size)
            rendered = Renderer(RendererConfig(backend="torch", cull_backfaces=True))(
                vertices, head, small, torch.zeros_like(vertices)).depth[0]
            facing = (-normal * torch.nn.functional.normalize(position, dim=-1)).sum(-1)
            col = (pixels[:, 0] * scale).long().clamp(0, size[1] - 1)
            row = (pixels[:, 1] * scale).long().clamp(0, size[0] - 1)
            inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
            visible = inside & ((rendered[row, col] + position[:, 2]).abs() < config.depth_tolerance)
            blend = ((facing - config.min_facing) / (config.full_facing - config.min_facing)).clamp(0, 1) * visible
            shade = irradiance(normal[None], c.lighting.to(torch.float32))[0].clamp_min(0.05)
            photo = torch.as_tensor(_sample(image, pixels.numpy())) / shade
            colour = blend[:, None] * photo.clamp(0, 1) + (1 - blend[:, None]) * fallback
        texture = _fill(colour.numpy(), fg.pixel.numpy(), config.size, fallback.mean(0).numpy())
        return (np.clip(texture, 0, 1) * 255 + 0.5).astype(np.uint8)


def bake_texture(model: MorphableModel, coeffs: FaceCoeffs, image: np.ndarray,
                 config: TextureConfig = TextureConfig()) -> np.ndarray:
    """``(S, S, 3)`` uint8 face texture of one face fitted to ``image`` (see :meth:`TextureBaker.bake`);
    keep a :class:`TextureBaker` to bake many photos of one model."""
    return TextureBaker(model, config).bake(coeffs, image)


def _fill(colour: np.ndarray, pixel: np.ndarray, size: int, background: np.ndarray,
          gutter: int = 8) -> np.ndarray:
    """Scatter texel colours into an image, grow them ``gutter`` pixels into the empty seams
    (the mean of the baked texels within that distance, so mip-mapping does not bleed background
    into the face) and fill the rest with ``background``."""
    import cv2

    image = np.zeros((size * size, 3), np.float32)
    weight = np.zeros(size * size, np.float32)
    image[pixel], weight[pixel] = colour, 1.0
    image, weight = image.reshape(size, size, 3), weight.reshape(size, size)
    window = (2 * gutter + 1, 2 * gutter + 1)
    total = cv2.boxFilter(image, -1, window, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(weight, -1, window, normalize=False, borderType=cv2.BORDER_CONSTANT)
    empty = weight == 0
    grown = empty & (count > 0.5)
    image[grown] = total[grown] / count[grown, None]
    image[empty & ~grown] = background
    return image
