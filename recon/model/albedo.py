"""A low-dimensional albedo model for the ICT head (ICT Light ships none).

Per-vertex albedo is a soft mix of a few region colours:
``albedo[b, v] = sum_a weights[v, a] * colours[b, a]`` with ``weights`` fixed and
smooth (binary region masks diffused over the mesh), and ``colours (B, A, 3)`` the
free parameters. Regions (in this order):

0. ``skin``  - everything not listed below
1. ``lips``  - inside the outer lip contour (iBUG landmarks 48-59) on the face
2. ``brows`` - within 0.6 cm of the eyebrow landmark polylines (17-21, 22-26)
3. ``sclera`` and 4. ``iris`` - the eyeballs, by ICT material
5. ``mouth`` - mouth socket, gums and tongue
6. ``teeth`` and 7. ``lashes``

Fitting optimises skin, lips and brows; the others start at plausible colours
and are only lightly adjusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from facecast.recon.model.topology import ICTData, triangulate

REGIONS = ("skin", "lips", "brows", "sclera", "iris", "mouth", "teeth", "lashes")
DEFAULT_COLOURS = np.array([
    [0.72, 0.53, 0.44], [0.62, 0.36, 0.36], [0.30, 0.22, 0.18], [0.85, 0.82, 0.80],
    [0.25, 0.18, 0.12], [0.35, 0.12, 0.12], [0.90, 0.88, 0.80], [0.05, 0.04, 0.04],
], dtype=np.float64)
#: Regions whose colour is fitted to a photo (the others keep their defaults).
FITTED_REGIONS = (0, 1, 2)


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of ``(N, 2)`` points against a closed ``(K, 2)`` polygon."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-12, y1 - y0) + x0)
    return crosses.sum(axis=1) % 2 == 1


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of ``(N, 2)`` points to the open polyline ``(K, 2)``."""
    best = np.full(len(points), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best


def diffuse(masks: np.ndarray, data: ICTData, iterations: int) -> np.ndarray:
    """Average ``(V, A)`` masks over mesh neighbours ``iterations`` times."""
    tris = triangulate(data.face_vertices)
    n = data.n_vertices
    rows = np.concatenate([tris[:, 0], tris[:, 1], tris[:, 2], np.arange(n)])
    cols = np.concatenate([tris[:, 1], tris[:, 2], tris[:, 0], np.arange(n)])
    adjacency = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    step = sp.diags(1.0 / np.asarray(adjacency.sum(1)).ravel()) @ adjacency
    for _ in range(iterations):
        masks = step @ masks
    return masks


def region_weights(data: ICTData, smoothing: int = 3) -> np.ndarray:
    """``(V, 8)`` soft weights of :data:`REGIONS` per vertex; rows sum to 1."""
    n = data.n_vertices
    masks = np.zeros((n, len(REGIONS)))
    region = data.vertex_region()
    names = ["face", "head_neck", "mouth_socket", "eye_sockets", "gums_tongue", "teeth",
             "eyeballs", "lacrimal", "eye_blend", "eye_occlusion", "eyelashes"]
    face = region == names.index("face")
    xy = data.neutral[:, :2]
    lmk = data.neutral[data.landmarks68, :2]
    masks[face & _inside_polygon(xy, lmk[48:60]) & (data.neutral[:, 2] > 8.0), 1] = 1.0
    near_brow = np.minimum(_distance_to_polyline(xy, lmk[17:22]), _distance_to_polyline(xy, lmk[22:27]))
    masks[face & (near_brow < 0.6) & (data.neutral[:, 2] > 6.0), 2] = 1.0
    iris_materials = [data.material_names.index(m) for m in ("M_IrisLeft", "M_IrisRight")]
    iris = np.zeros(n, bool)
    corners = data.face_vertices[np.isin(data.face_material, iris_materials)].ravel()
    iris[corners[corners >= 0]] = True
    eyes = region == names.index("eyeballs")
    masks[eyes & ~iris, 3] = 1.0
    masks[eyes & iris, 4] = 1.0
    masks[np.isin(region, [names.index("mouth_socket"), names.index("gums_tongue")]), 5] = 1.0
    masks[region == names.index("teeth"), 6] = 1.0
    masks[region == names.index("eyelashes"), 7] = 1.0
    masks[:, 0] = 1.0 - masks[:, 1:].max(axis=1)
    soft = diffuse(masks, data, smoothing)
    soft[~face] = masks[~face]  # keep material regions crisp; only face regions blend
    return soft / soft.sum(axis=1, keepdims=True)


@dataclass
class AlbedoModel:
    """Fixed region weights ``(V, A)`` and default colours ``(A, 3)``."""

    weights: torch.Tensor
    defaults: torch.Tensor

    @classmethod
    def from_data(cls, data: ICTData, dtype: torch.dtype = torch.float32) -> AlbedoModel:
        return cls(torch.as_tensor(region_weights(data), dtype=dtype),
                   torch.as_tensor(DEFAULT_COLOURS, dtype=dtype))

    @property
    def n_regions(self) -> int:
        return int(self.weights.shape[1])

    def default_colours(self, batch: int) -> torch.Tensor:
        """``(B, A, 3)`` default colours."""
        return self.defaults[None].expand(batch, -1, -1).clone()

    def vertex_albedo(self, colours: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Region colours ``(B, A, 3)`` -> per-vertex albedo ``(B, V, 3)`` (or the selected vertices)."""
        if colours.ndim != 3 or colours.shape[1:] != (self.n_regions, 3):
            raise ValueError(f"colours must have shape (B, {self.n_regions}, 3), got {tuple(colours.shape)}")
        weights = self.weights if vertex_ids is None else self.weights[vertex_ids]
        return weights.to(colours) @ colours
