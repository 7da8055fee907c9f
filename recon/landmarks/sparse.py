"""``SparseLandmarks``: evaluate only the vertices a landmark mapping touches (3DDFA-style).

Fitting to 478 MediaPipe points needs about 1,400 of the 26,719 vertices; a
:class:`MorphableModel` restricted to them is ~20x cheaper per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from facecast.recon.landmarks.correspondence import LandmarkMapping, barycentric_points
from facecast.recon.model.geometry import apply_rigid
from facecast.recon.model.morphable import MorphableModel


@dataclass
class SparseLandmarks:
    """A mapping plus the sparse model over the vertices it uses.

    model: :class:`MorphableModel` over ``vertex_ids`` (M vertices).
    local: ``(N, 3)`` rows of the sparse model holding each landmark's triangle.
    """

    mapping: LandmarkMapping
    model: MorphableModel
    vertex_ids: np.ndarray
    local: np.ndarray
    _tensors: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, model: MorphableModel, mapping: LandmarkMapping) -> SparseLandmarks:
        """Restrict the full ``model`` to the vertices of ``mapping``."""
        ids, inverse = np.unique(mapping.vertex_ids, return_inverse=True)
        return cls(mapping, model.subset(ids), ids, inverse.reshape(mapping.vertex_ids.shape))

    def __len__(self) -> int:
        return len(self.mapping)

    def points(self, vertices: torch.Tensor) -> torch.Tensor:
        """Sparse-model vertices ``(B, M, 3)`` -> landmark points ``(B, N, 3)``."""
        key = (vertices.dtype, vertices.device)
        if key not in self._tensors:
            self._tensors[key] = (torch.as_tensor(self.local, dtype=torch.long, device=vertices.device),
                                  torch.as_tensor(self.mapping.barycentric, dtype=vertices.dtype,
                                                  device=vertices.device))
        return barycentric_points(vertices, *self._tensors[key])

    def point_basis(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """The unposed landmark points as a linear function of the coefficients (cached per dtype).

        Returns ``base (N, 3)`` cm and ``basis (N, 3, 153)`` (100 identity then 53 expression
        columns): points are ``base + basis @ concat(identity, expression)``, without view offsets.
        """
        key = ("basis", dtype, self.model.neutral.device)
        if key not in self._tensors:
            model = self.model
            bases = torch.cat([model.identity_basis, model.expression_basis]).to(dtype)  # (K, M, 3)
            base = self.points(model.neutral.to(dtype)[None])[0]
            self._tensors[key] = (base, self.points(bases).permute(1, 2, 0).contiguous())
        return self._tensors[key]

    def evaluate(self, identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
                 translation: torch.Tensor) -> torch.Tensor:
        """Posed landmark points ``(B, N, 3)`` cm for coefficients as in :meth:`MorphableModel.forward`:
        identity ``(B, 100)``, expression ``(B, 53)``, axis-angle rotation ``(B, 3)``, translation ``(B, 3)``.

        The points are linear in the coefficients (:meth:`point_basis`), so this is one small
        matrix product and the pose, not a sparse mesh and its barycentric gather. Includes the
        mapping's view-dependent offsets when it has them.
        """
        batch = identity.shape[0]
        if identity.ndim != 2 or identity.shape[1] != 100 or expression.shape != (batch, 53):
            raise ValueError(f"identity (B, 100) and expression (B, 53) expected, got {tuple(identity.shape)} "
                             f"and {tuple(expression.shape)}")
        base, basis = self.point_basis(identity.dtype)
        n, k = basis.shape[0], basis.shape[2]
        shape = torch.cat([identity, expression], dim=1)
        points = apply_rigid(base + (shape @ basis.reshape(n * 3, k).T).reshape(batch, n, 3), rotation, translation)
        if self.mapping.view is not None:
            points = points + self.mapping.view.camera_offsets(rotation.expand(batch, 3), translation.expand(batch, 3))
        return points
