"""Eye gaze from the iris landmarks of a fitted face.

ICT Light's expression shapes do not turn the eyeballs, so the fit leaves the observed iris centres
where they are; the gaze is read from them afterwards. For each eye, the eyeball is a sphere about
its centre (the template's offset from the iris-centre point to the eyeball centre, posed with the
head) through the model's iris centre; the camera ray through the observed iris centre meets that
sphere at the seen iris, and the direction from the centre to it, in the head's frame, is the gaze.
Angles are the head angles' (:func:`facecast.pipelines.export.coefficients.yaw_pitch_roll`): yaw
positive towards +x (the subject's left), pitch positive down, relative to the eye at rest, where
"at rest" is where MediaPipe puts the iris centres on renders of our heads with the eyes at rest
(:data:`REST_DEGREES`): MediaPipe's iris centre is not the ICT vertex our mapping gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecast.recon.landmarks.correspondence import SURFACE_IRIS_CENTRE
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs
from facecast.recon.model.eyes import eye_layout
from facecast.recon.model.geometry import axis_angle_to_matrix

#: (yaw, pitch) degrees of the left and right eye that :func:`eye_gaze` reads, before this is taken
#: off, on the still, neutral frames of 6 synthetic clips (benchmarks/expression_clips.py renders:
#: random identities, eyes at rest; 40-70 frames each, per-clip means within +-2.5 degrees of these)
REST_DEGREES = ((-7.98, 7.21), (6.83, 6.54))


@dataclass(frozen=True)
class EyeRig:
    """landmarks ``(2,)``: the iris-centre landmarks, the subject's left eye first; offsets ``(2, 3)`` cm:
    from each iris-centre point to its eyeball's centre, in the template's model frame."""

    landmarks: np.ndarray
    offsets: torch.Tensor

    @classmethod
    def build(cls, sparse: SparseLandmarks) -> EyeRig | None:
        """The rig of ``sparse``'s mapping, or None when it has no two iris centres (e.g. iBUG 68)."""
        centres = np.flatnonzero(sparse.mapping.surface == SURFACE_IRIS_CENTRE)
        if len(centres) != 2:
            return None
        eyes = torch.as_tensor(eye_layout(sparse.model.data).centres, dtype=torch.float64)  # (2, 3) left first
        dtype = sparse.model.neutral.dtype
        with torch.no_grad():
            points = sparse.evaluate(torch.zeros(1, 100, dtype=dtype), torch.zeros(1, 53, dtype=dtype),
                                     torch.zeros(1, 3, dtype=dtype), torch.zeros(1, 3, dtype=dtype))
        points = points[0, centres].to(torch.float64)
        order = torch.cdist(eyes, points).argmin(1).numpy()  # the iris centre nearest each eyeball
        return cls(centres[order], eyes - points[order])


def eye_gaze(sparse: SparseLandmarks, rig: EyeRig, coeffs: FaceCoeffs, points: torch.Tensor) -> np.ndarray:
    """``(B, 6)`` radians: left yaw / pitch / roll, right yaw / pitch / roll (roll 0) of B fitted faces.

    coeffs: their fit (pose, identity, expression, camera); points: ``(B, N, 2)`` the observed landmarks
    in renderer pixels, as the fit saw them.
    """
    batch = coeffs.batch_size
    if points.shape[0] != batch or points.shape[-1] != 2:
        raise ValueError(f"points must have shape ({batch}, N, 2), got {tuple(points.shape)}")
    dtype = torch.float64
    with torch.no_grad():
        own = sparse.model.neutral.dtype
        model = sparse.evaluate(*(t.to(own) for t in (coeffs.identity, coeffs.expression, coeffs.rotation,
                                                        coeffs.translation)))
        iris = model[:, rig.landmarks].to(dtype)                                          # (B, 2, 3) cm
        rotation = axis_angle_to_matrix(coeffs.rotation.to(dtype))                        # (B, 3, 3)
        offsets = rig.offsets.to(dtype)
        centre = iris + torch.einsum("bij,ej->bei", rotation, offsets)
        radius = offsets.norm(dim=1)                                                      # (2,)
        seen = points[:, rig.landmarks].to(dtype)                                         # (B, 2, 2) px
        focal, principal = coeffs.focal.to(dtype)[:, None], coeffs.principal.to(dtype)[:, None]
        ray = torch.stack([(seen[..., 0] - principal[..., 0]) / focal, (principal[..., 1] - seen[..., 1]) / focal,
                           -torch.ones_like(seen[..., 0])], -1)
        ray = ray / ray.norm(dim=-1, keepdim=True)
        along = (ray * centre).sum(-1)
        disc = along ** 2 - (centre ** 2).sum(-1) + radius ** 2
        t = along - disc.clamp_min(0).sqrt()  # the near side of the sphere (the ray's closest point if it misses)
        gaze = ray * t[..., None] - centre
        gaze = torch.einsum("bji,bej->bei", rotation, gaze / gaze.norm(dim=-1, keepdim=True))  # head frame
        rest = -offsets / radius[:, None]
        angles = _yaw_pitch(gaze) - _yaw_pitch(rest)[None] - torch.tensor(REST_DEGREES, dtype=dtype).deg2rad()
    out = np.zeros((batch, 6))
    out[:, [0, 1]], out[:, [3, 4]] = angles[:, 0].numpy(), angles[:, 1].numpy()
    return out


def _yaw_pitch(direction: torch.Tensor) -> torch.Tensor:
    """``(..., 2)`` yaw (towards +x) and pitch (down) of unit directions ``(..., 3)`` (forward +z)."""
    x, y, z = direction.unbind(-1)
    return torch.stack([torch.atan2(x, z), torch.atan2(-y, torch.hypot(x, z))], -1)
