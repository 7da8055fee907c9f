"""What the regressor sees, and how its pose answer maps back to the image camera.

The regressor works in a *crop frame*: a square of ``S`` pixels around the 478
MediaPipe landmarks (the same square as :func:`facecast.recon.fit.photometric.face_crop`),
with crop-normalised coordinates in ``[-1, 1]`` (x right, y down; ``-1`` and ``1``
are the crop's outer edges). The image camera is the fitter's
(:func:`facecast.recon.fit.landmark_fit.default_camera`: focal ``focal_factor * max(H, W)``,
principal point at the image centre; renderer pixel convention, see
:mod:`facecast.recon.model.coeffs`).

Pose is predicted relative to the crop, so a crop looks the same wherever the face
sits in the image:

- ``position (B, 2)``: where the model-space *anchor* point (near the middle of the
  face) projects, in crop-normalised coordinates (about 0 for every face);
- ``log_depth (B,)``: the anchor's depth ``d`` as
  ``d = exp(log_depth) * depth_unit * f_n``, with ``f_n`` the focal length in
  crop-normalised units; ``exp(log_depth) * depth_unit`` is the size in cm of half
  the crop at the face, so ``log_depth`` is about 0 for every face size in pixels;
- ``rotation_local (B, 3)``: axis-angle relative to a virtual camera looking along
  the ray through the crop centre (an off-centre face is seen obliquely; this
  removes that from what the network must learn).

:func:`pose_from_crop` and its inverse :func:`crop_from_pose` convert both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecast.recon.fit.landmark_fit import FOCAL_FACTOR, default_camera
from facecast.recon.model.geometry import axis_angle_to_matrix, matrix_to_axis_angle

N_LANDMARKS = 478


@dataclass
class CropFrame:
    """B square crops: image pixel ``p`` (renderer convention) is crop pixel ``(p - origin) * scale``.

    origin ``(B, 2)`` image pixels of the crop's top-left corner; scale ``(B,)`` crop
    pixels per image pixel; size: crop side ``S`` in pixels; image_size ``(B, 2)``
    ``(H, W)`` of the images the crops come from.
    """

    origin: torch.Tensor
    scale: torch.Tensor
    size: int
    image_size: torch.Tensor

    def __post_init__(self) -> None:
        b = self.origin.shape[0] if self.origin.ndim == 2 else -1
        if tuple(self.origin.shape) != (b, 2):
            raise ValueError(f"origin must have shape (B, 2), got {tuple(self.origin.shape)}")
        if tuple(self.scale.shape) != (b,):
            raise ValueError(f"scale must have shape ({b},), got {tuple(self.scale.shape)}")
        if tuple(self.image_size.shape) != (b, 2):
            raise ValueError(f"image_size must have shape ({b}, 2), got {tuple(self.image_size.shape)}")
        if self.size < 8:
            raise ValueError(f"crop size must be >= 8 pixels, got {self.size}")

    @classmethod
    def around(cls, points: torch.Tensor, image_size: torch.Tensor, size: int, crop_scale: float) -> CropFrame:
        """Crops around landmark points ``(B, N, 2)`` (renderer pixels) of images ``(B, 2)`` (H, W).

        Side ``crop_scale * diagonal / sqrt(2)`` of the points' box, centred on the box.
        """
        if points.ndim != 3 or points.shape[-1] != 2:
            raise ValueError(f"points must have shape (B, N, 2), got {tuple(points.shape)}")
        from facecast.recon.fit.photometric import face_crop

        crop = face_crop(points, size, crop_scale)
        return cls(crop.origin, crop.scale, size, image_size)

    @property
    def batch_size(self) -> int:
        return int(self.origin.shape[0])

    @property
    def half(self) -> torch.Tensor:
        """``(B,)`` image pixels per crop-normalised unit (half the crop side)."""
        return self.size / (2 * self.scale)

    @property
    def centre(self) -> torch.Tensor:
        """``(B, 2)`` image pixels of the crop centre."""
        return self.origin + self.half[:, None]

    def normalise(self, points: torch.Tensor) -> torch.Tensor:
        """Image pixels ``(B, N, 2)`` -> crop-normalised ``(B, N, 2)``."""
        return (points - self.centre[:, None]) / self.half[:, None, None]

    def to_image(self, points: torch.Tensor) -> torch.Tensor:
        """Crop-normalised ``(B, N, 2)`` -> image pixels ``(B, N, 2)``."""
        return points * self.half[:, None, None] + self.centre[:, None]

    def camera(self, focal_factor: float = FOCAL_FACTOR, dtype: torch.dtype = torch.float32):
        """Image camera: focal ``(B,)`` and principal point ``(B, 2)`` pixels."""
        return default_camera(self.image_size, focal_factor, dtype)

    def crop_camera(self, focal: torch.Tensor, principal: torch.Tensor, supersample: int = 1):
        """Focal ``(B,)`` and principal ``(B, 2)`` that render straight into the crop (``S * supersample`` px)."""
        factor = self.scale * supersample
        return focal * factor, (principal - self.origin) * factor[:, None]

    def select(self, index: torch.Tensor | slice) -> CropFrame:
        """Crops ``index`` of the batch."""
        return CropFrame(self.origin[index], self.scale[index], self.size, self.image_size[index])

    @staticmethod
    def cat(items: list[CropFrame]) -> CropFrame:
        """Concatenate along the batch (all of one crop size)."""
        if len({f.size for f in items}) != 1:
            raise ValueError(f"cannot concatenate crops of sizes {sorted({f.size for f in items})}")
        return CropFrame(torch.cat([f.origin for f in items]), torch.cat([f.scale for f in items]), items[0].size,
                         torch.cat([f.image_size for f in items]))


@dataclass
class RegressorInputs:
    """A batch for the regressor.

    crops ``(B, 3, S, S)`` float RGB in [0, 1] or ``None`` (landmark-only models);
    landmarks ``(B, 478, 2)`` MediaPipe points in crop-normalised coordinates;
    frame: where each crop lies in its image.
    """

    crops: torch.Tensor | None
    landmarks: torch.Tensor
    frame: CropFrame

    def __post_init__(self) -> None:
        b, s = self.frame.batch_size, self.frame.size
        if tuple(self.landmarks.shape) != (b, N_LANDMARKS, 2):
            raise ValueError(f"landmarks must have shape ({b}, {N_LANDMARKS}, 2), got {tuple(self.landmarks.shape)}")
        if self.crops is not None and tuple(self.crops.shape) != (b, 3, s, s):
            raise ValueError(f"crops must have shape ({b}, 3, {s}, {s}), got {tuple(self.crops.shape)}")

    def select(self, index: torch.Tensor | slice) -> RegressorInputs:
        crops = None if self.crops is None else self.crops[index]
        return RegressorInputs(crops, self.landmarks[index], self.frame.select(index))

    @staticmethod
    def cat(items: list[RegressorInputs]) -> RegressorInputs:
        """Concatenate along the batch (all with crops, or all without)."""
        with_crops = {i.crops is not None for i in items}
        if len(with_crops) != 1:
            raise ValueError("cannot concatenate inputs with and without crops")
        crops = torch.cat([i.crops for i in items]) if with_crops.pop() else None
        return RegressorInputs(crops, torch.cat([i.landmarks for i in items]), CropFrame.cat([i.frame for i in items]))


def prepare_inputs(faces: list, images: list[np.ndarray] | None, size: int, crop_scale: float,
                   with_crops: bool = True, sizes: list[tuple[int, int]] | None = None) -> RegressorInputs:
    """Detector faces (MediaPipe 478, one per image) and RGB uint8 images ``(H, W, 3)`` -> inputs.

    Points are in the detector's integer-centre convention
    (:mod:`facecast.recon.landmarks.detector`) and converted to renderer pixels here. Without
    crops (``with_crops=False``) the images may be ``None`` when ``sizes`` (H, W) are given.
    """
    from facecast.recon.fit.photometric import FaceCrop, crop_images
    from facecast.recon.model.coeffs import PIXEL_OFFSET

    if images is None and (with_crops or sizes is None):
        raise ValueError("the images are needed for crops; without crops give their sizes")
    count = len(images) if images is not None else len(sizes)
    if len(faces) != count or not faces:
        raise ValueError(f"need one face per image and at least one, got {len(faces)} faces, {count} images")
    for k, face in enumerate(faces):
        if face.scheme != "mediapipe478":
            raise ValueError(f"face {k}: the regressor needs mediapipe478 landmarks, got {face.scheme}")
    for k, image in enumerate(images or []):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {k} must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    points = torch.tensor(np.stack([f.points for f in faces]) + PIXEL_OFFSET, dtype=torch.float32)
    image_size = torch.tensor([tuple(s) for s in sizes] if sizes is not None else [i.shape[:2] for i in images])
    frame = CropFrame.around(points, image_size, size, crop_scale)
    crops = None
    if with_crops:
        crops = crop_images(images, FaceCrop(frame.origin, frame.scale, size)).permute(0, 3, 1, 2).contiguous()
    return RegressorInputs(crops, frame.normalise(points), frame)


def ray_rotation(direction: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)``: the smallest rotation taking the optical axis ``(0, 0, -1)`` to ``direction (B, 3)``."""
    d = torch.nn.functional.normalize(direction, dim=-1)
    axis = torch.stack([d[:, 1], -d[:, 0], torch.zeros_like(d[:, 0])], dim=-1)  # (0, 0, -1) x d
    sin = axis.norm(dim=-1, keepdim=True)
    angle = torch.atan2(sin, -d[:, 2:])
    factor = torch.where(sin > 1e-8, angle / sin.clamp_min(1e-8), torch.ones_like(sin))
    return axis_angle_to_matrix(axis * factor)


def _centre_ray(frame: CropFrame, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    offset = (frame.centre - principal) / focal[:, None]
    direction = torch.stack([offset[:, 0], -offset[:, 1], -torch.ones_like(offset[:, 0])], dim=-1)
    return ray_rotation(direction)


def pose_from_crop(rotation_local: torch.Tensor, position: torch.Tensor, log_depth: torch.Tensor,
                   frame: CropFrame, anchor: torch.Tensor, depth_unit: float,
                   focal_factor: float = FOCAL_FACTOR) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop-relative pose -> camera-frame rotation ``(B, 3)`` axis-angle and translation ``(B, 3)`` cm.

    rotation_local ``(B, 3)``, position ``(B, 2)``, log_depth ``(B,)`` (see the module
    docstring); anchor ``(3,)`` cm in model space. Differentiable.
    """
    dtype = position.dtype
    focal, principal = frame.camera(focal_factor, dtype)
    half = frame.half.to(dtype)
    depth = torch.exp(log_depth) * depth_unit * focal / half
    pixel = frame.centre.to(dtype) + position * half[:, None]
    offset = (pixel - principal) * (depth / focal)[:, None]
    point = torch.stack([offset[:, 0], -offset[:, 1], -depth], dim=-1)
    matrix = _centre_ray(frame, focal, principal).to(dtype) @ axis_angle_to_matrix(rotation_local)
    translation = point - matrix @ anchor.to(dtype)
    return matrix_to_axis_angle(matrix), translation


def crop_from_pose(rotation: torch.Tensor, translation: torch.Tensor, frame: CropFrame, anchor: torch.Tensor,
                   depth_unit: float, focal_factor: float = FOCAL_FACTOR
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pose_from_crop`: ``rotation_local (B, 3)``, ``position (B, 2)``, ``log_depth (B,)``."""
    dtype = rotation.dtype
    focal, principal = frame.camera(focal_factor, dtype)
    half = frame.half.to(dtype)
    matrix = axis_angle_to_matrix(rotation)
    point = matrix @ anchor.to(dtype) + translation
    depth = -point[:, 2]
    pixel = principal + torch.stack([point[:, 0], -point[:, 1]], dim=-1) * (focal / depth)[:, None]
    position = (pixel - frame.centre.to(dtype)) / half[:, None]
    log_depth = torch.log(depth * half / (depth_unit * focal))
    local = _centre_ray(frame, focal, principal).to(dtype).transpose(1, 2) @ matrix
    return matrix_to_axis_angle(local), position, log_depth
