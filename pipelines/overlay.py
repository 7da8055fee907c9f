"""Preview pictures of fitted faces: the mesh over the photo, with the model landmarks."""

from __future__ import annotations

import numpy as np
import torch

from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs, coeffs_camera
from facecast.recon.model.morphable import MorphableModel
from facecast.render.preview import draw_landmarks, shaded_overlay

#: Longest side of a preview picture; larger photos are shown downscaled.
MAX_PREVIEW_SIDE = 1280


def draw_fit(model: MorphableModel, faces: torch.Tensor, coeffs: FaceCoeffs, image: np.ndarray,
             landmarks68: np.ndarray | None = None, scale: float | None = None) -> np.ndarray:
    """``uint8 (h, w, 3)``: the fitted mesh (one face of ``coeffs``) shaded over ``image``.

    landmarks68: optional ``(68, 2)`` model landmarks (detector pixel convention) drawn as dots.
    scale: ``None`` to downscale ``image`` here to at most :data:`MAX_PREVIEW_SIDE`; else
    ``image`` is already the fitted image resized by ``scale``.
    """
    import cv2

    if scale is None:
        height, width = image.shape[:2]
        scale = min(1.0, MAX_PREVIEW_SIDE / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        photo = image if scale == 1.0 else cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
    else:
        photo, size = image, image.shape[:2]
    c = coeffs.detach().to(torch.float32)
    with torch.no_grad():
        vertices = model(c.identity, c.expression, c.rotation, c.translation).vertices[0]
    camera = coeffs_camera(c.focal * scale, c.principal * scale, size)
    picture = shaded_overlay(photo, vertices.to(torch.float32), faces, camera, opacity=0.6)
    if landmarks68 is not None:
        picture = draw_landmarks(picture, (np.asarray(landmarks68) + PIXEL_OFFSET) * scale,
                                 colour=(255, 60, 60), radius=max(1, round(2 * max(size) / 640)))
    return picture
