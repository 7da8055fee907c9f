"""Synthetic faces with known truth: ICT heads rendered with a photo texture and SH light.

Used by the synthetic benchmarks (fitting, transfer) and as training data for the
regressor. The texture is baked once from a photo (by default scikit-image's
public-domain astronaut) with the project's own reconstruction; every identity
shares the ICT UV layout, so one texture dresses any head. Renders look enough
like photos for MediaPipe to find the face, so the whole detect -> fit chain is
exercised, not just the optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecast.render.renderer import Renderer, RendererConfig
from facecast.render.shading import UVTexture, directional_light

from .coeffs import coeffs_camera
from .model import MorphableModel
from .topology import triangulate


def astronaut_texture(model: MorphableModel, size: int = 512) -> np.ndarray:
    """``(S, S, 3)`` uint8 face texture baked from ``skimage.data.astronaut()``."""
    from facecast.pipelines.reconstruct import PhotoPipeline, ReconstructConfig
    from facecast.recon.texture import TextureConfig
    from skimage import data

    pipeline = PhotoPipeline(model, ReconstructConfig(texture=TextureConfig(size=size)))
    return pipeline.run(data.astronaut(), "astronaut").texture


@dataclass
class SyntheticScene:
    """Camera and light of synthetic renders: image side (px), focal (px), distance (cm)."""

    size: int = 320
    focal: float = 600.0
    distance: float = 55.0
    background: tuple[float, float, float] = (0.40, 0.45, 0.50)


class SyntheticRenderer:
    """Renders ICT heads (face, scalp, sockets) with a UV texture under SH light."""

    def __init__(self, model: MorphableModel, texture: np.ndarray, scene: SyntheticScene = SyntheticScene()):
        self.model, self.scene = model, scene
        data = model.data
        mask = data.region_face_mask(("head",))
        self.faces = torch.as_tensor(triangulate(data.face_vertices[mask]))
        corner = torch.as_tensor(data.uvs[triangulate(data.face_uvs[mask])], dtype=torch.float32)
        corner[..., 0] -= torch.floor(corner[..., 0].mean(-1, keepdim=True))  # UV tiles wrap onto one image
        image = torch.as_tensor(np.array(texture)).permute(2, 0, 1)[None].float() / 255.0
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
