"""Synthetic faces with known truth: ICT heads rendered with a photo texture and SH light.

Used by the synthetic benchmarks (fitting, transfer) and as training data for the
regressor. The texture is baked once from a photo (by default scikit-image's
public-domain astronaut) with the project's own reconstruction; every identity
shares the ICT UV layout, so one texture dresses any head. Renders look enough
like photos for MediaPipe to find the face, so the whole detect -> fit chain is
exercised, not just the optimiser. Eyes (inner eyeballs with a drawn iris and
pupil that follow the gaze blendshapes), teeth, gums and eyelashes are rendered
too, with flat colours from a small atlas beside the photo texture: empty eye
sockets would mislead the detector's eyelid and iris points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecast.recon.model.coeffs import coeffs_camera
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import ICTData, triangulate
from facecast.render.renderer import Renderer, RendererConfig
from facecast.render.shading import UVTexture, directional_light

#: extra materials of synthetic renders and their flat colours (linear RGB)
FLAT_COLOURS: dict[str, tuple[float, float, float]] = {
    "M_Teeth": (0.80, 0.78, 0.70), "M_GumsTongue": (0.55, 0.22, 0.22), "M_EyeLashes": (0.08, 0.06, 0.05),
}
EYE_MATERIALS = ("M_IrisLeft", "M_IrisRight")  # the inner eyeballs (the Sclera shells are clear corneas)
SCLERA = (0.82, 0.80, 0.76)
IRIS = (0.30, 0.20, 0.12)
IRIS_RADIUS, PUPIL_RADIUS = 0.55, 0.22  # sine of the half-angle, on the unit eyeball
ATLAS_CELL = 128  # pixels per atlas cell (eye cell and flat-colour cells)


def _eye_cell(size: int) -> np.ndarray:
    """``(size, size, 3)`` float: orthographic view of a unit eyeball (sclera, iris, pupil)."""
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(axis, -axis)
    r = np.hypot(x, y)
    cell = np.empty((size, size, 3))
    cell[:] = SCLERA
    iris = r < IRIS_RADIUS
    shade = 0.7 + 0.3 * (r / IRIS_RADIUS)  # darker limbal ring
    cell[iris] = np.array(IRIS) * (1.6 - shade[iris, None])
    cell[r < PUPIL_RADIUS] = 0.02
    return cell


def _eye_uvs(data: ICTData, vertex_ids: np.ndarray, material: int) -> np.ndarray:
    """``(N, 2)`` positions in [-1, 1]^2 of eyeball vertices in the eye cell (front hemisphere)."""
    faces = data.face_vertices[data.face_material == material]
    ball = data.neutral[np.unique(faces[faces >= 0])]
    centre = (ball.max(0) + ball.min(0)) / 2
    direction = data.neutral[vertex_ids] - centre
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    xy = direction[:, :2].copy()
    back = direction[:, 2] < 0
    xy[back] = 0.95 * xy[back] / np.maximum(np.linalg.norm(xy[back], axis=1, keepdims=True), 1e-6)
    return xy


def texture_atlas(data: ICTData, texture: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Faces, texture image and corner UVs of the synthetic head (skin, eyeballs, mouth, lashes).

    texture: ``(S, S, 3)`` uint8 ICT face texture. Returns faces ``(F, 3)`` int64, image
    ``(1, 3, S, S + C)`` float in [0, 1] (the photo texture, then a column of
    ``C = ATLAS_CELL`` cells: the eye, then one per flat colour) and corner UVs ``(F, 3, 2)``.
    """
    size = texture.shape[0]
    cell = ATLAS_CELL
    if size < cell * (1 + len(FLAT_COLOURS)):
        raise ValueError(f"texture of {size} px is too small for the synthetic atlas")
    atlas = np.zeros((size, size + cell, 3))
    atlas[:, :size] = np.asarray(texture, dtype=np.float64) / 255.0
    atlas[:cell, size:] = _eye_cell(cell)
    width = size + cell

    def cell_uv(row: int, xy: np.ndarray) -> np.ndarray:  # xy in [-1, 1]^2 within cell ``row``
        u = (size + cell / 2 + xy[..., 0] * (cell / 2 - 2)) / width
        v = 1 - (row * cell + cell / 2 - xy[..., 1] * (cell / 2 - 2)) / size
        return np.stack([u, v], axis=-1)

    mask = data.region_face_mask(("head",))
    faces = [triangulate(data.face_vertices[mask])]
    corner = data.uvs[triangulate(data.face_uvs[mask])].astype(np.float64)
    corner[..., 0] -= np.floor(corner[..., 0].mean(-1, keepdims=True))  # UV tiles wrap onto one image
    corners = [np.stack([corner[..., 0] * size / width, corner[..., 1]], axis=-1)]
    for name in EYE_MATERIALS:
        material = data.material_names.index(name)
        tri = triangulate(data.face_vertices[data.face_material == material])
        faces.append(tri)
        corners.append(cell_uv(0, _eye_uvs(data, tri.reshape(-1), material).reshape(*tri.shape, 2)))
    for row, (name, colour) in enumerate(FLAT_COLOURS.items(), start=1):
        atlas[row * cell:(row + 1) * cell, size:] = colour
        tri = triangulate(data.face_vertices[data.face_material == data.material_names.index(name)])
        faces.append(tri)
        corners.append(cell_uv(row, np.zeros((*tri.shape, 2))))
    image = torch.as_tensor(atlas, dtype=torch.float32).permute(2, 0, 1)[None].contiguous()
    return (np.concatenate(faces).astype(np.int64), image,
            torch.as_tensor(np.concatenate(corners), dtype=torch.float32))


@dataclass
class SyntheticScene:
    """Camera and light of synthetic renders: image side (px), focal (px), distance (cm)."""

    size: int = 320
    focal: float = 600.0
    distance: float = 55.0
    background: tuple[float, float, float] = (0.40, 0.45, 0.50)


class SyntheticRenderer:
    """Renders ICT heads (skin, eyeballs, teeth, gums, lashes) with a UV texture under SH light."""

    def __init__(self, model: MorphableModel, texture: np.ndarray, scene: SyntheticScene = SyntheticScene()):
        self.model, self.scene = model, scene
        faces, image, corner = texture_atlas(model.data, texture)
        self.faces = torch.as_tensor(faces)
        self.texture = UVTexture(image, corner)
        self.renderer = Renderer(RendererConfig(backend="torch"))

    def translation(self, batch: int) -> torch.Tensor:
        """``(B, 3)`` the default head position in front of the camera."""
        return torch.tensor([[0.0, 0.0, -self.scene.distance]]).expand(batch, 3).clone()

    def camera(self, batch: int):
        s = self.scene
        return coeffs_camera(torch.full((batch,), s.focal), torch.full((batch, 2), s.size / 2.0), (s.size, s.size))

    def render(self, identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
               translation: torch.Tensor | None = None, light_direction: torch.Tensor | None = None) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 renders of B faces (coefficients as in :class:`MorphableModel`)."""
        batch = identity.shape[0]
        translation = self.translation(batch) if translation is None else translation
        direction = torch.tensor([[0.3, 0.4, 1.0]]).expand(batch, 3) if light_direction is None else light_direction
        with torch.no_grad():
            vertices = self.model(identity, expression, rotation, translation).vertices
            out = self.renderer(vertices, self.faces, self.camera(batch), self.texture,
                                directional_light(direction, 0.5, 0.6),
                                background=torch.tensor(self.scene.background))
        return (out.image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def write_clip(path, frames: np.ndarray, fps: float) -> None:
    """Encode ``(T, H, W, 3)`` uint8 frames as an MP4 (H.264) for the tracking benchmarks."""
    from facecast.render.preview import write_video

    write_video(path, list(frames), fps=fps)
