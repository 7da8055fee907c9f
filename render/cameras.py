"""Cameras: world points -> pixel coordinates, batched.

Conventions (used by the whole renderer):

- **World** is the model's frame: cm, +x to the head's left (viewer's right),
  +y up, +z out of the face towards the viewer.
- **Camera frame** is OpenCV's: +x right, +y down, +z forward (the camera
  looks along +z). ``p_cam = rotation @ p_world + translation``.
- **Pixels** are continuous image coordinates: x right, y down, the pixel in
  row ``i``, column ``j`` covers ``[j, j + 1) x [i, i + 1)`` and its centre is
  ``(j + 0.5, i + 0.5)``; the image centre is ``(W / 2, H / 2)``. This matches
  OpenGL/nvdiffrast and pytorch3d's screen space. An OpenCV intrinsic matrix
  calibrated with pixel centres at integers maps to ours by ``cx = cx_cv + 0.5``,
  ``cy = cy_cv + 0.5`` (see :meth:`PerspectiveCamera.from_opencv`).

A camera looking at the head from distance ``d`` along the world +z axis is
``rotation = diag(1, -1, -1)``, ``translation = (0, 0, d)`` (built by
:meth:`PerspectiveCamera.front` / :meth:`OrthographicCamera.front`): world +y
becomes image up, the face's right side appears on the image left, as in a photo.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from .validation import check_image_size

ImageSize = tuple[int, int]

#: World -> camera rotation of a camera on the world +z axis looking back at the origin.
FRONT_ROTATION = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def _check_batched(name: str, value: torch.Tensor, tail: tuple[int, ...]) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, {', '.join(map(str, tail))})")
    if value.ndim != 1 + len(tail) or tuple(value.shape[1:]) != tail or value.shape[0] == 0:
        want = ", ".join(map(str, tail))
        raise ValueError(f"{name} must have shape (B, {want}) with B >= 1, got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {value.dtype}")


@dataclass(frozen=True, kw_only=True)
class _Camera:
    """Fields and checks shared by both cameras (not used directly)."""

    rotation: torch.Tensor       # (B, 3, 3) world -> camera
    translation: torch.Tensor    # (B, 3) world -> camera
    principal_point: torch.Tensor  # (B, 2) pixels (x, y)
    image_size: ImageSize        # (H, W), the same for the whole batch

    is_perspective: ClassVar[bool] = True

    def _check(self, extra: dict[str, tuple[torch.Tensor, tuple[int, ...]]]) -> None:
        object.__setattr__(self, "image_size", check_image_size(self.image_size))
        fields = {"rotation": (self.rotation, (3, 3)), "translation": (self.translation, (3,)),
                  "principal_point": (self.principal_point, (2,)), **extra}
        for name, (value, tail) in fields.items():
            _check_batched(name, value, tail)
        sizes = {name: int(value.shape[0]) for name, (value, _) in fields.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"camera batch sizes differ: {sizes}")
        kinds = {(v.dtype, v.device) for v, _ in fields.values()}
        if len(kinds) != 1:
            raise ValueError(f"camera tensors must share dtype and device, got {sorted(map(str, kinds))}")

    @property
    def batch_size(self) -> int:
        return int(self.rotation.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.rotation.dtype

    @property
    def device(self) -> torch.device:
        return self.rotation.device

    def _tensor_fields(self) -> list[str]:
        return [k for k, v in vars(self).items() if isinstance(v, torch.Tensor)]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A copy with every tensor moved to ``device`` / cast to ``dtype``."""
        return replace(self, **{k: getattr(self, k).to(device=device, dtype=dtype)
                                for k in self._tensor_fields()})

    def expand(self, batch_size: int):
        """A copy with batch size ``batch_size`` (only from batch 1 or the same size)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"camera batch size {self.batch_size} does not match batch {batch_size}")
        return replace(self, **{k: getattr(self, k).expand(batch_size, *getattr(self, k).shape[1:])
                                for k in self._tensor_fields()})

    def rows(self, start: int, stop: int):
        """The cameras of images ``start:stop`` (a batch-1 camera is shared by all images)."""
        if self.batch_size == 1:
            return self
        return replace(self, **{k: getattr(self, k)[start:stop] for k in self._tensor_fields()})

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """World ``(B, N, 3)`` -> camera frame ``(B, N, 3)`` (x right, y down, z forward)."""
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape (B, N, 3), got {tuple(points.shape)}")
        if self.batch_size not in (1, points.shape[0]):
            raise ValueError(f"camera batch size {self.batch_size} does not match points batch {points.shape[0]}")
        rotation, translation = self.rotation, self.translation
        if rotation.shape[0] != points.shape[0]:
            rotation, translation = rotation.expand(points.shape[0], 3, 3), translation.expand(points.shape[0], 3)
        return torch.baddbmm(translation[:, None, :], points, rotation.transpose(-1, -2))

    def to_screen(self, points: torch.Tensor) -> torch.Tensor:
        """World ``(B, N, 3)`` -> ``(B, N, 3)``: pixel x, pixel y, camera-frame depth z."""
        cam = self.transform(points)
        return torch.cat([self._pixels(cam), cam[..., 2:]], dim=-1)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """World ``(B, N, 3)`` -> ``(B, N, 2)`` continuous pixel coordinates (x right, y down)."""
        return self._pixels(self.transform(points))

    def _pixels(self, cam: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _front_pose(batch_size: int, distance: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    rotation = torch.tensor(FRONT_ROTATION, device=device, dtype=dtype).expand(batch_size, 3, 3).clone()
    translation = torch.zeros(batch_size, 3, device=device, dtype=dtype)
    translation[:, 2] = distance
    return rotation, translation


def _centre(image_size: ImageSize, batch_size: int, device, dtype) -> torch.Tensor:
    height, width = check_image_size(image_size)
    return torch.tensor([width / 2.0, height / 2.0], device=device, dtype=dtype).expand(batch_size, 2).clone()


@dataclass(frozen=True, kw_only=True)
class PerspectiveCamera(_Camera):
    """Pinhole camera: ``x = fx * X / Z + cx``, ``y = fy * Y / Z + cy`` (camera frame X, Y, Z).

    rotation ``(B, 3, 3)``, translation ``(B, 3)``: world -> camera (OpenCV frame).
    principal_point ``(B, 2)``: (cx, cy) in pixels, ``(W / 2, H / 2)`` is the image centre.
    focal ``(B, 2)``: (fx, fy) in pixels. image_size: ``(H, W)``.
    """

    focal: torch.Tensor

    is_perspective: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._check({"focal": (self.focal, (2,))})

    def _pixels(self, cam: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.principal_point[:, None, :], cam[..., :2], self.focal[:, None, :] / cam[..., 2:])

    @classmethod
    def front(cls, image_size: ImageSize, distance: float, focal: float, batch_size: int = 1,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> PerspectiveCamera:
        """Camera at world ``(0, 0, distance)`` looking at the origin, up = world +y, centred.

        ``focal`` in pixels (the same for x and y). A head 25 cm wide at ``distance`` cm
        spans about ``25 * focal / distance`` pixels.
        """
        rotation, translation = _front_pose(batch_size, distance, device, dtype)
        focal_t = torch.full((batch_size, 2), float(focal), device=device, dtype=dtype)
        return cls(rotation=rotation, translation=translation,
                   principal_point=_centre(image_size, batch_size, device, dtype),
                   image_size=image_size, focal=focal_t)

    @classmethod
    def from_opencv(cls, camera_matrix: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                    image_size: ImageSize) -> PerspectiveCamera:
        """From OpenCV ``K (B, 3, 3)``, ``R (B, 3, 3)``, ``t (B, 3)`` (pixel centres at integers)."""
        _check_batched("camera_matrix", camera_matrix, (3, 3))
        focal = torch.stack([camera_matrix[:, 0, 0], camera_matrix[:, 1, 1]], dim=-1)
        centre = camera_matrix[:, :2, 2] + 0.5
        return cls(rotation=rotation, translation=translation, principal_point=centre,
                   image_size=image_size, focal=focal)


@dataclass(frozen=True, kw_only=True)
class OrthographicCamera(_Camera):
    """Orthographic camera: ``x = sx * X + cx``, ``y = sy * Y + cy`` (camera frame X, Y).

    rotation ``(B, 3, 3)``, translation ``(B, 3)``: world -> camera (OpenCV frame);
    depth is the camera-frame Z. scale ``(B, 2)``: pixels per world unit (cm).
    principal_point ``(B, 2)``: pixel where the camera axis lands. image_size: ``(H, W)``.
    """

    scale: torch.Tensor

    is_perspective: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._check({"scale": (self.scale, (2,))})

    def _pixels(self, cam: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.principal_point[:, None, :], cam[..., :2], self.scale[:, None, :])

    @classmethod
    def front(cls, image_size: ImageSize, scale: float, distance: float = 100.0, batch_size: int = 1,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> OrthographicCamera:
        """Camera on the world +z axis looking at the origin, ``scale`` pixels per cm, centred.

        ``distance`` only offsets depth (so that depths stay positive).
        """
        rotation, translation = _front_pose(batch_size, distance, device, dtype)
        scale_t = torch.full((batch_size, 2), float(scale), device=device, dtype=dtype)
        return cls(rotation=rotation, translation=translation,
                   principal_point=_centre(image_size, batch_size, device, dtype),
                   image_size=image_size, scale=scale_t)


Camera = PerspectiveCamera | OrthographicCamera
