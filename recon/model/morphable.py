"""``MorphableModel``: the ICT Face Model Light as a differentiable ``nn.Module``.

A mesh is ``neutral + identity @ identity_basis + expression @ expression_basis``
(cm), optionally followed by a rigid pose ``R v + t``. Expression channels are in
ARKit order with ARKit camelCase names (see :mod:`facecast.recon.model.arkit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecast.recon.model.arkit import camel_from_ict, facecast_order
from facecast.recon.model.geometry import apply_rigid
from facecast.recon.model.topology import N_EXPRESSION, N_IDENTITY, ICTData, load_ict_data, triangulate


@dataclass
class FaceOutput:
    """Result of :meth:`MorphableModel.forward`.

    vertices: ``(B, N, 3)`` cm, N = all vertices or the selected subset.
    landmarks: ``(B, 68, 3)`` cm, Multi-PIE 68 landmark vertices, or ``None`` when
    the model is a subset that does not hold all of them.
    """

    vertices: torch.Tensor
    landmarks: torch.Tensor | None


def blend_shapes(coefficients: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` weights times ``(K, N, 3)`` basis -> ``(B, N, 3)`` offsets."""
    k, n, _ = basis.shape
    return (coefficients @ basis.reshape(k, n * 3)).reshape(-1, n, 3)


def _check_coefficients(name: str, value: torch.Tensor, size: int, dtype: torch.dtype) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, {size}), got {type(value).__name__}")
    if value.ndim != 2 or value.shape[1] != size:
        raise ValueError(f"{name} must have shape (B, {size}), got {tuple(value.shape)}")
    if value.dtype != dtype:
        raise TypeError(f"{name} is {value.dtype} but the model is {dtype}; "
                        f"convert one of them (model.to(dtype) or tensor.to(dtype))")


class MorphableModel(nn.Module):
    """ICT Face Model Light with its arrays as buffers.

    Buffers: ``neutral (N, 3)``, ``identity_basis (100, N, 3)``,
    ``expression_basis (53, N, 3)`` (ARKit order), ``vertex_ids (N,)`` (indices of
    these vertices in the full mesh), ``landmark_index (68,)`` (rows of this model
    holding the 68 landmarks, -1 where missing).
    """

    def __init__(self, data: ICTData, vertex_ids: torch.Tensor | np.ndarray | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        order = facecast_order(data.ict_expression_names)
        self.expression_names: list[str] = [camel_from_ict(data.ict_expression_names[k]) for k in order]
        self.ict_expression_names: list[str] = [data.ict_expression_names[k] for k in order]
        self.data = data
        ids = np.arange(data.n_vertices) if vertex_ids is None else np.asarray(vertex_ids, dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0 or ids.min() < 0 or ids.max() >= data.n_vertices:
            raise ValueError(f"vertex_ids must be a non-empty 1-D array of indices in [0, {data.n_vertices})")
        self.is_full = vertex_ids is None
        position = np.full(data.n_vertices, -1, dtype=np.int64)
        position[ids] = np.arange(ids.size)
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        self.register_buffer("neutral", as_t(data.neutral[ids]))
        self.register_buffer("identity_basis", as_t(data.identity_modes[:, ids]))
        self.register_buffer("expression_basis", as_t(data.expression_modes[order][:, ids]))
        self.register_buffer("vertex_ids", torch.as_tensor(ids))
        self.register_buffer("landmark_index", torch.as_tensor(position[data.landmarks68]))

    @classmethod
    def load(cls, path: str | Path | None = None, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> MorphableModel:
        """Load from the asset registry (explicit path, ``$FACECAST_ASSETS``, cache, download)."""
        return cls(load_ict_data(path), dtype=dtype).to(device)

    def subset(self, vertex_ids: torch.Tensor | np.ndarray) -> MorphableModel:
        """A model evaluating only ``vertex_ids`` (indices into the full mesh): the fast path.

        ``model.subset(model.data.landmarks68)`` evaluates just the 68 landmarks.
        """
        ids = torch.as_tensor(vertex_ids).cpu().numpy()
        full_ids = self.vertex_ids.cpu().numpy()[ids] if not self.is_full else ids
        out = MorphableModel(self.data, full_ids, dtype=self.neutral.dtype)
        return out.to(self.neutral.device)

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    def triangles(self, regions: tuple[str, ...] = ("all",)) -> torch.Tensor:
        """``(T, 3)`` long triangles of the full mesh in the given regions (quads split once)."""
        if not self.is_full:
            raise ValueError("triangles are defined on the full model, not on a vertex subset")
        polygons = self.data.face_vertices[self.data.region_face_mask(regions)]
        return torch.as_tensor(triangulate(polygons), device=self.neutral.device)

    def identity_shape(self, identity: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` cm: the unposed, expressionless heads of ``identity (B, 100)``. A video keeps
        one identity: compute this once and pass it to :meth:`expressed` for every frame."""
        _check_coefficients("identity", identity, N_IDENTITY, self.neutral.dtype)
        return self.neutral + blend_shapes(identity, self.identity_basis)

    def expressed(self, shape: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor | None = None,
                  translation: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N, 3)`` vertices in cm: ``shape`` (``(1 or B, N, 3)`` from :meth:`identity_shape`) with
        ``expression (B, 53)``, then the optional pose as in :meth:`forward`."""
        _check_coefficients("expression", expression, N_EXPRESSION, self.neutral.dtype)
        if shape.ndim != 3 or shape.shape[1:] != self.neutral.shape or shape.shape[0] not in (1, expression.shape[0]):
            raise ValueError(f"shape must have shape (1 or {expression.shape[0]}, {self.n_vertices}, 3), "
                             f"got {tuple(shape.shape)}")
        batch = expression.shape[0]
        vertices = shape + blend_shapes(expression, self.expression_basis)
        if rotation is not None or translation is not None:
            zeros = expression.new_zeros(batch, 3)
            rotation = zeros if rotation is None else rotation
            translation = zeros if translation is None else translation
            for name, value in (("rotation", rotation), ("translation", translation)):
                if value.shape != (batch, 3):
                    raise ValueError(f"{name} must have shape ({batch}, 3), got {tuple(value.shape)}")
            vertices = apply_rigid(vertices, rotation, translation)
        return vertices

    def forward(self, identity: torch.Tensor, expression: torch.Tensor,
                rotation: torch.Tensor | None = None,
                translation: torch.Tensor | None = None) -> FaceOutput:
        """Evaluate meshes.

        identity: ``(B, 100)`` PCA weights (~N(0, 1) each).
        expression: ``(B, 53)`` blendshape weights in ARKit order (meaningful in [0, 1]).
        rotation: optional ``(B, 3)`` axis-angle in radians, applied about the origin.
        translation: optional ``(B, 3)`` cm, applied after the rotation.
        Returns :class:`FaceOutput` with ``vertices (B, N, 3)`` in cm.
        """
        _check_coefficients("identity", identity, N_IDENTITY, self.neutral.dtype)
        _check_coefficients("expression", expression, N_EXPRESSION, self.neutral.dtype)
        if identity.shape[0] != expression.shape[0]:
            raise ValueError(f"batch sizes differ: identity {identity.shape[0]}, expression {expression.shape[0]}")
        vertices = self.expressed(self.identity_shape(identity), expression, rotation, translation)
        landmarks = None
        if bool((self.landmark_index >= 0).all()):
            landmarks = vertices[:, self.landmark_index]
        return FaceOutput(vertices=vertices, landmarks=landmarks)
