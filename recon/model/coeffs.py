"""``FaceCoeffs``: everything that describes one reconstructed face in one image.

Conventions (shared by fitting, the regressor, export and transfer):

- geometry: ``MorphableModel(identity, expression, rotation, translation)`` gives
  vertices in the camera's world frame in cm: x right, y up, z towards the viewer.
  The camera sits at the origin and looks down -z, so a frontal face has rotation
  0 and a translation like (0, 0, -60).
- camera: pinhole with ``focal`` (pixels) and ``principal`` point (pixels) in the
  input image; a point (X, Y, Z) projects to
  ``u = cx + f X / -Z``, ``v = cy - f Y / -Z`` (OpenCV image coordinates: u right,
  v down, the centre of pixel (i, j) at (j + 0.5, i + 0.5)).
- lighting: 2nd-order spherical harmonics, ``(B, 9, 3)`` per colour channel.
- albedo: ``(B, A, 3)`` linear RGB in [0, 1] for the A colour regions of
  :class:`facecast.recon.model.albedo.AlbedoModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from facecast.recon.model.topology import N_EXPRESSION, N_IDENTITY

#: renderer pixel = detector pixel + PIXEL_OFFSET. Detectors, and every pixel coordinate facecast
#: reports, put the centre of pixel (0, 0) at (0, 0) (OpenCV); the camera above puts it at (0.5, 0.5).
PIXEL_OFFSET = 0.5


@dataclass
class FaceCoeffs:
    """Batched face coefficients (B faces). Shapes are checked by :meth:`validate`.

    identity ``(B, 100)``, expression ``(B, 53)`` in [0, 1] (ARKit order),
    rotation ``(B, 3)`` axis-angle radians, translation ``(B, 3)`` cm,
    focal ``(B,)`` pixels, principal ``(B, 2)`` pixels, lighting ``(B, 9, 3)``,
    albedo ``(B, A, 3)``.
    """

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    focal: torch.Tensor
    principal: torch.Tensor
    lighting: torch.Tensor
    albedo: torch.Tensor

    def __post_init__(self) -> None:
        self.validate()

    @property
    def batch_size(self) -> int:
        return int(self.identity.shape[0])

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field with a wrong shape or non-finite values."""
        batch = self.identity.shape[0] if self.identity.ndim else -1
        expected = {
            "identity": (batch, N_IDENTITY), "expression": (batch, N_EXPRESSION),
            "rotation": (batch, 3), "translation": (batch, 3), "focal": (batch,),
            "principal": (batch, 2), "lighting": (batch, 9, 3),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if tuple(value.shape) != shape:
                raise ValueError(f"FaceCoeffs.{name} must have shape {shape}, got {tuple(value.shape)}")
        if self.albedo.ndim != 3 or self.albedo.shape[0] != batch or self.albedo.shape[2] != 3:
            raise ValueError(f"FaceCoeffs.albedo must have shape ({batch}, A, 3), got {tuple(self.albedo.shape)}")
        tensors = [getattr(self, item.name) for item in fields(self)]
        if not bool(torch.isfinite(torch.cat([t.reshape(-1) for t in tensors])).all()):  # one check for all
            for item, value in zip(fields(self), tensors):
                if not torch.isfinite(value).all():
                    raise ValueError(f"FaceCoeffs.{item.name} has non-finite values")

    def map(self, fn) -> FaceCoeffs:
        """Apply ``fn`` to every tensor (e.g. ``lambda t: t.detach()``)."""
        return FaceCoeffs(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def detach(self) -> FaceCoeffs:
        return self.map(lambda t: t.detach())

    def to(self, *args, **kwargs) -> FaceCoeffs:
        return self.map(lambda t: t.to(*args, **kwargs))

    def select(self, index: int | slice | torch.Tensor) -> FaceCoeffs:
        """Faces ``index`` of the batch (an int keeps a batch of one)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return self.map(lambda t: t[index])

    @staticmethod
    def cat(items: list[FaceCoeffs]) -> FaceCoeffs:
        """Concatenate along the batch."""
        if not items:
            raise ValueError("cannot concatenate an empty list of FaceCoeffs")
        return FaceCoeffs(**{f.name: torch.cat([getattr(c, f.name) for c in items])
                             for f in fields(FaceCoeffs)})

    def to_json(self) -> list[dict[str, list]]:
        """One JSON-ready dict of plain lists per face."""
        return [{f.name: getattr(self, f.name)[b].detach().cpu().tolist() for f in fields(self)}
                for b in range(self.batch_size)]

    @staticmethod
    def from_json(records: list[dict[str, list]], dtype: torch.dtype = torch.float32) -> FaceCoeffs:
        """Inverse of :meth:`to_json`; raises ``ValueError`` naming a missing field."""
        names = [f.name for f in fields(FaceCoeffs)]
        for k, record in enumerate(records):
            missing = [n for n in names if n not in record]
            if missing:
                raise ValueError(f"face {k}: coefficient fields missing: {missing}")
        return FaceCoeffs(**{n: torch.tensor([r[n] for r in records], dtype=dtype) for n in names})


def coeffs_camera(focal: torch.Tensor, principal: torch.Tensor, image_size: tuple[int, int]):
    """The renderer's :class:`~facecast.render.cameras.PerspectiveCamera` for posed vertices.

    focal ``(B,)`` and principal ``(B, 2)`` pixels; image_size ``(H, W)``. Posed vertices
    are already in the camera-world frame (camera at the origin looking down -z), so the
    extrinsics are the fixed flip ``diag(1, -1, -1)`` into OpenCV's camera frame.
    """
    from facecast.render.cameras import FRONT_ROTATION, PerspectiveCamera

    batch = focal.shape[0]
    rotation = torch.tensor(FRONT_ROTATION, dtype=focal.dtype, device=focal.device).expand(batch, 3, 3)
    return PerspectiveCamera(rotation=rotation, translation=focal.new_zeros(batch, 3),
                             principal_point=principal, image_size=image_size,
                             focal=focal[:, None].expand(batch, 2))


def project_points(points: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """Camera-world points ``(B, N, 3)`` -> pixels ``(B, N, 2)`` (focal ``(B,)``, principal ``(B, 2)``).

    The projection of :func:`coeffs_camera` (``u = cx + f X / -Z``, ``v = cy - f Y / -Z``), written out:
    it runs in every step of every fit, where building a camera object costs more than the arithmetic.
    """
    if points.ndim != 3 or points.shape[-1] != 3 or focal.shape != points.shape[:1] \
            or principal.shape != (points.shape[0], 2):
        raise ValueError(f"points (B, N, 3), focal (B,) and principal (B, 2) expected, got {tuple(points.shape)}, "
                         f"{tuple(focal.shape)} and {tuple(principal.shape)}")
    flip = torch.tensor([1.0, -1.0], dtype=points.dtype, device=points.device)
    return torch.addcmul(principal[:, None, :], points[..., :2] * flip, focal[:, None, None] / -points[..., 2:])
