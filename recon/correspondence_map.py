"""``LandmarkMap``: landmarks as barycentric points on the ICT mesh, evaluated sparsely.

A landmark n is ``sum_k bary[n, k] * vertices[triangles[n, k]]``. Only the vertices
the map touches are evaluated (3DDFA-style sparse path): :meth:`sparse_model`
returns a :class:`MorphableModel` over ``vertex_ids`` and :meth:`points` takes its
output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .model import MorphableModel


@dataclass
class LandmarkMap:
    """N landmarks of a named scheme on the full mesh.

    triangles ``(N, 3)`` int full-mesh vertex ids, bary ``(N, 3)`` float (rows sum to 1).
    """

    scheme: str
    triangles: np.ndarray
    bary: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.triangles = np.asarray(self.triangles, dtype=np.int64)
        self.bary = np.asarray(self.bary, dtype=np.float64)
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or self.bary.shape != self.triangles.shape:
            raise ValueError(f"triangles and bary must both have shape (N, 3), got "
                             f"{self.triangles.shape} and {self.bary.shape}")
        if not np.allclose(self.bary.sum(1), 1.0, atol=1e-5):
            raise ValueError("barycentric rows must sum to 1")
        self.vertex_ids, inverse = np.unique(self.triangles, return_inverse=True)
        self._local = inverse.reshape(self.triangles.shape)

    @classmethod
    def from_vertices(cls, scheme: str, vertex_ids: np.ndarray) -> "LandmarkMap":
        """Landmarks that sit exactly on vertices ``(N,)``."""
        ids = np.asarray(vertex_ids, dtype=np.int64)
        bary = np.zeros((ids.size, 3))
        bary[:, 0] = 1.0
        return cls(scheme, np.repeat(ids[:, None], 3, axis=1), bary)

    def __len__(self) -> int:
        return int(self.triangles.shape[0])

    def sparse_model(self, model: MorphableModel) -> MorphableModel:
        """A model over ``vertex_ids`` only (cached per model, dtype and device)."""
        key = (id(model), model.neutral.dtype, model.neutral.device)
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = model.subset(self.vertex_ids)
        return self._cache[key]

    def points(self, vertices: torch.Tensor) -> torch.Tensor:
        """Sparse-model vertices ``(B, M, 3)`` (M = len(vertex_ids)) -> landmarks ``(B, N, 3)``."""
        if vertices.ndim != 3 or vertices.shape[1] != self.vertex_ids.size:
            raise ValueError(f"vertices must have shape (B, {self.vertex_ids.size}, 3) "
                             f"(the sparse model's), got {tuple(vertices.shape)}")
        local = torch.as_tensor(self._local, device=vertices.device)
        bary = torch.as_tensor(self.bary, dtype=vertices.dtype, device=vertices.device)
        return (vertices[:, local] * bary[None, :, :, None]).sum(2)

    def points_full(self, vertices: torch.Tensor) -> torch.Tensor:
        """Full-mesh vertices ``(B, V, 3)`` -> landmarks ``(B, N, 3)``."""
        return self.points(vertices[:, torch.as_tensor(self.vertex_ids, device=vertices.device)])
