"""Look at an :class:`AvatarMesh` as a viewer shows it, with facecast's own renderer.

Every material is drawn the way the GLB/OBJ exporters describe it: its base colour texture where it
has one (ICT's UV tiles wrap onto the one image), else its flat colour; opaque materials only (the
exporters' blended helper layers are see-through). Used by ``benchmarks/avatar_quality.py`` and the
tests to check eyes, skin texture and seams from the outside, as a user would see them.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch

from facecast.pipelines.export.avatar import AvatarMesh
from facecast.recon.model.topology import triangulate
from facecast.render.cameras import FRONT_ROTATION, PerspectiveCamera
from facecast.render.renderer import Renderer, RendererConfig
from facecast.render.shading import UVTexture

CELL = 8  # pixels of each flat-colour cell of the atlas


def _decode_png(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def avatar_atlas(mesh: AvatarMesh) -> tuple[torch.Tensor, UVTexture, np.ndarray]:
    """Triangles ``(F, 3)`` of the opaque materials, their :class:`UVTexture` (sRGB values in [0, 1])
    and each triangle's material ``(F,)`` (an index into ``mesh.material_names``).

    The atlas is the first texture (resized to a square of its height) followed by a column of
    flat-colour cells, one per untextured material.
    """
    import cv2

    textures = {t.material: _decode_png(t.png) for t in mesh.textures}
    side = max([t.shape[0] for t in textures.values()] + [CELL * len(mesh.material_names)])
    width = side * len(textures) + CELL
    atlas = np.zeros((side, width, 3))
    triangles, corners, materials = [], [], []
    slot = {name: k for k, name in enumerate(textures)}
    for material, name in enumerate(mesh.material_names):
        chosen = mesh.face_material == material
        if not chosen.any() or mesh.colour(material)[3] < 1.0:
            continue
        tri = triangulate(mesh.polygons[chosen])
        uv = mesh.uvs[triangulate(mesh.face_uvs[chosen])].astype(np.float64)
        if name in textures:
            atlas[:, slot[name] * side:(slot[name] + 1) * side] = cv2.resize(
                textures[name], (side, side), interpolation=cv2.INTER_AREA) / 255.0
            u = uv[..., 0] - np.floor(uv[..., 0].mean(-1, keepdims=True))  # the tile wraps onto the image
            uv = np.stack([(slot[name] + u.clip(0, 1)) * side / width, uv[..., 1].clip(0, 1)], -1)
        else:
            row = material
            atlas[row * CELL:(row + 1) * CELL, -CELL:] = mesh.colour(material)[:3]
            centre = np.array([(width - CELL / 2) / width, 1 - (row * CELL + CELL / 2) / side])
            uv = np.broadcast_to(centre, uv.shape)
        triangles.append(tri)
        corners.append(uv)
        materials.append(np.full(len(tri), material))
    image = torch.as_tensor(atlas, dtype=torch.float32).permute(2, 0, 1)[None].contiguous()
    return (torch.as_tensor(np.concatenate(triangles), dtype=torch.long),
            UVTexture(image, torch.as_tensor(np.concatenate(corners), dtype=torch.float32)), np.concatenate(materials))


def view_camera(size: tuple[int, int], focal: float, principal: tuple[float, float] | None = None
                ) -> PerspectiveCamera:
    """Pinhole camera at the origin looking down -z (y up), image ``size`` ``(H, W)``, focal in pixels."""
    height, width = size
    cx, cy = principal if principal is not None else (width / 2, height / 2)
    return PerspectiveCamera(rotation=torch.tensor(FRONT_ROTATION, dtype=torch.float32)[None],
                             translation=torch.zeros(1, 3), principal_point=torch.tensor([[float(cx), float(cy)]]),
                             image_size=size, focal=torch.tensor([[float(focal), float(focal)]]))


def turned(vertices: np.ndarray, yaw_deg: float, distance: float = 60.0) -> np.ndarray:
    """Head vertices ``(V, 3)`` cm turned by ``yaw_deg`` about the vertical axis through their centre,
    ``distance`` cm in front of a camera at the origin."""
    centre = (vertices.max(0) + vertices.min(0)) / 2
    a = math.radians(yaw_deg)
    rotation = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    return (vertices - centre) @ rotation.T + np.array([0.0, 0.0, -distance])


def render_avatar(mesh: AvatarMesh, vertices: np.ndarray, camera: PerspectiveCamera,
                  light: torch.Tensor | None = None, background: tuple[float, float, float] = (1.0, 1.0, 1.0)
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3)`` float image in [0, 1] and ``(H, W)`` int material of each pixel (-1: background)
    of ``mesh`` at ``vertices`` ``(V, 3)``.

    light: SH ``(1, 9, 3)`` (e.g. a fit's ``lighting``) or ``None`` for unlit base colours.
    """
    if vertices.shape != mesh.vertices.shape:
        raise ValueError(f"vertices must have shape {mesh.vertices.shape}, got {vertices.shape}")
    faces, texture, materials = avatar_atlas(mesh)
    out = Renderer(RendererConfig(backend="torch", cull_backfaces=False))(
        torch.as_tensor(vertices, dtype=torch.float32)[None], faces, camera, texture, light,
        torch.tensor(background, dtype=torch.float32))
    face = out.fragments.pix_to_face[0].numpy()
    return out.image[0].clamp(0, 1).numpy(), np.where(face >= 0, materials[face.clip(0)], -1)
