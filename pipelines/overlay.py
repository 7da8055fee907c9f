"""Preview pictures of fitted faces: the mesh over the photo, with the model landmarks.

Two kinds: :func:`draw_fit` renders the shaded mesh through the renderer (one photo, where
quality matters: ~0.1-0.3 s), :class:`LineOverlay` draws a face mesh through the fitted model's
landmark points with OpenCV (every frame of a video: about a millisecond).
"""

from __future__ import annotations

import numpy as np
import torch

from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs, coeffs_camera
from facecast.recon.model.morphable import MorphableModel
from facecast.render.preview import draw_landmarks, shaded_overlay

#: Longest side of a preview picture; larger photos are shown downscaled.
MAX_PREVIEW_SIDE = 1024
_SHIFT = 4  # OpenCV fixed-point drawing: coordinates in 1/16 pixel


def preview_copy(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``(H, W, 3)`` RGB shrunk to at most ``side`` pixels on its longer side for a preview, and the scale used
    (1.0: the picture itself, not copied)."""
    scale = min(1.0, side / max(rgb.shape[:2]))
    if scale == 1.0:
        return rgb, scale
    import cv2

    return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


def _fitted_photo(image: np.ndarray, scale: float | None) -> tuple[np.ndarray, float]:
    """``image`` downscaled to at most :data:`MAX_PREVIEW_SIDE` (``scale=None``), or as given."""
    import cv2

    if scale is not None:
        return image, scale
    height, width = image.shape[:2]
    scale = min(1.0, MAX_PREVIEW_SIDE / max(height, width))
    if scale == 1.0:
        return image, scale
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _dots(picture: np.ndarray, landmarks68: np.ndarray | None, scale: float) -> np.ndarray:
    if landmarks68 is None:
        return picture
    return draw_landmarks(picture, (np.asarray(landmarks68) + PIXEL_OFFSET) * scale,
                          colour=(255, 60, 60), radius=max(1, round(2 * max(picture.shape[:2]) / 640)))


def draw_fit(model: MorphableModel, faces: torch.Tensor, coeffs: FaceCoeffs, image: np.ndarray,
             landmarks68: np.ndarray | None = None, scale: float | None = None) -> np.ndarray:
    """``uint8 (h, w, 3)``: the fitted mesh (one face of ``coeffs``) shaded over ``image``.

    faces: ``(F, 3)`` triangles to draw. landmarks68: optional ``(68, 2)`` model landmarks (detector
    pixel convention) drawn as dots. scale: ``None`` to downscale ``image`` here to at most
    :data:`MAX_PREVIEW_SIDE`; else ``image`` is already the fitted image resized by ``scale``.
    """
    photo, scale = _fitted_photo(image, scale)
    c = coeffs.detach().to(torch.float32)
    with torch.no_grad():
        vertices = model(c.identity, c.expression, c.rotation, c.translation).vertices[0]
    camera = coeffs_camera(c.focal * scale, c.principal * scale, photo.shape[:2])
    picture = shaded_overlay(photo, vertices.to(torch.float32), faces, camera, opacity=0.6)
    return _dots(picture, landmarks68, scale)


class LineOverlay:
    """MediaPipe's face-mesh tessellation (2,556 edges between its 468 points, plus the iris rings)
    drawn through the fitted model's own 478 landmark points, with OpenCV: a frame costs one
    ``cv2.polylines`` call on points the tracker has already projected."""

    def __init__(self, colour: tuple[int, int, int] = (80, 255, 120), opacity: float = 0.55) -> None:
        from mediapipe.python.solutions.face_mesh_connections import FACEMESH_IRISES, FACEMESH_TESSELATION

        self.edges = np.array(sorted(FACEMESH_TESSELATION | FACEMESH_IRISES), dtype=np.int64)  # (E, 2)
        self.colour, self.opacity = colour, opacity

    def draw(self, points478: np.ndarray, image: np.ndarray, landmarks68: np.ndarray | None = None,
             scale: float | None = None) -> np.ndarray:
        """``uint8 (h, w, 3)``: the mesh lines over a copy of ``image``.

        points478: ``(478, 2)`` the fitted model's MediaPipe points (detector pixel convention, as
        :func:`facecast.recon.photo.model_landmarks` gives them); ``landmarks68`` and ``scale`` as in
        :func:`draw_fit`.
        """
        import cv2

        photo, scale = _fitted_photo(image, scale)
        points = np.asarray(points478, dtype=np.float64)
        if points.shape != (478, 2):
            raise ValueError(f"points478 must have shape (478, 2), got {points.shape}")
        pixels = (points + PIXEL_OFFSET) * scale - 0.5  # OpenCV's integer-centre pixels
        picture = np.ascontiguousarray(photo).copy()
        height, width = picture.shape[:2]
        x0, y0 = np.clip(np.floor(pixels.min(0)).astype(int) - 2, 0, [width, height])
        x1, y1 = np.clip(np.ceil(pixels.max(0)).astype(int) + 3, 0, [width, height])
        if x1 > x0 and y1 > y0:  # draw and blend inside the face's box only
            box = picture[y0:y1, x0:x1]
            lines = np.rint((pixels[self.edges] - (x0, y0)) * (1 << _SHIFT)).astype(np.int32)
            drawn = box.copy()
            cv2.polylines(drawn, list(lines.reshape(-1, 2, 1, 2)), isClosed=False, color=self.colour,
                          thickness=1, lineType=cv2.LINE_AA, shift=_SHIFT)
            box[:] = cv2.addWeighted(drawn, self.opacity, box, 1 - self.opacity, 0)
        return _dots(picture, landmarks68, scale)
