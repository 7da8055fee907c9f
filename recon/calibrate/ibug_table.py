"""Choose the iBUG-68 points on the ICT mesh from fitted annotated photos (writes ``weights/ibug68_ict.npz``).

Usage: FACECAST_ASSETS=../shared/assets python -m facecast.recon.calibrate.ibug_table
       [--media ../shared/media] [--split even] [--out recon/../weights/ibug68_ict.npz]

Every image of the choosing split (by default the even positions of the
name-sorted LFPW-68 images; the odd ones and AFLW2000 stay held out) is detected
and fitted with the default :class:`~facecast.recon.photo.PhotoReconstructor`
(so the table must be rebuilt whenever the photo fit changes: ``PhotoConfig``, the
MediaPipe mapping).
Then, independently for each iBUG point k:

1. candidates: skin vertices (``head`` regions) within ``radius`` cm, on the
   neutral, of the point's ``MEDIAPIPE_TO_IBUG68`` position;
2. each candidate's cost is its mean projected error over the images, in units
   of each image's outer-eye-corner distance (the NME of that one point);
3. the triangles around the ``shortlist`` cheapest vertices are searched on a
   barycentric grid (step ``1 / grid``) and the cheapest point is kept;
4. jaw points 0-16 do this for every blend of the fixed point with the image's
   silhouette candidate, ``w = clip(w0 + gain * s_k * v_x, 0, 1)`` per image
   (``w0`` in ``contour_weights``, ``gain`` in ``contour_gains``; ``s_k * v_x`` is
   about sin(yaw), positive on the side turned towards the camera, see
   :mod:`facecast.recon.landmarks.ibug`), and keep the cheapest ``(w0, gain, point)``.

Each point is a 2-D location on the surface (plus two blend numbers for the jaw)
chosen from ~100 images, so the choice has little room to overfit; the held-out
figures are in ``benchmarks/README.md`` (``benchmarks/accuracy.py``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.recon.landmarks.ibug import (
    JAW_SIDE,
    IbugTable,
    ModelLandmarks,
    ict68_table,
    mediapipe68_table,
    save_ibug_table,
    view_side,
)
from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs, project_points
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import triangulate


@dataclass(frozen=True)
class SearchConfig:
    """How far and how finely :func:`choose_table` searches (cm, counts)."""

    radius: float = 2.0
    jaw_radius: float = 4.0
    shortlist: int = 8
    grid: int = 10
    contour_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    contour_gains: tuple[float, ...] = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


@dataclass
class FittedSet:
    """Fitted faces with their annotations: coeffs (B faces), truth ``(B, 68, 2)``, scale ``(B,)`` pixels."""

    coeffs: FaceCoeffs
    truth: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_fits(cls, fits: list) -> FittedSet:
        """From :func:`facecast.recon.landmarks.evaluation.reconstruct_samples` output (failures skipped)."""
        done = [f for f in fits if f.result is not None]
        truth = np.stack([f.sample.points for f in done])
        scale = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=-1)
        return cls(FaceCoeffs.cat([f.result.coeffs for f in done]), truth, scale)

    @classmethod
    def from_samples(cls, reconstructor, samples: list) -> FittedSet:
        """Detect every :class:`~facecast.recon.landmarks.evaluation.Sample` (the face overlapping its
        annotation; images without one are skipped) and fit them all in one batch.

        The faces of a batch are independent (per-face losses, elementwise Adam), so this
        gives the per-image fits of :func:`~facecast.recon.landmarks.evaluation.reconstruct_samples`, ~5x faster.
        """
        from facecast.recon.landmarks.evaluation import match_face, read_rgb

        found = []
        for sample in samples:
            image = read_rgb(sample.image)
            face = match_face(reconstructor.detector.detect(image), sample.points)
            if face is not None:
                found.append((sample, face, image.shape[:2]))
        results = reconstructor.fit([f for _, f, _ in found], [size for _, _, size in found])
        truth = np.stack([s.points for s, _, _ in found])
        scale = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=-1)
        return cls(FaceCoeffs.cat([r.coeffs for r in results]), truth, scale)


class SurfaceSearch:
    """Posed skin vertices of a :class:`FittedSet` and the cost of points built from them."""

    def __init__(self, model: MorphableModel, fitted: FittedSet) -> None:
        data = model.data
        mask = data.region_face_mask(("head",))
        self.triangles = triangulate(data.face_vertices[mask]).astype(np.int64)
        self.ids = np.unique(self.triangles)
        self.neutral = data.neutral[self.ids].astype(np.float64)
        self.position = np.full(data.n_vertices, -1, dtype=np.int64)
        self.position[self.ids] = np.arange(self.ids.size)
        c = fitted.coeffs
        with torch.no_grad():
            sub = MorphableModel(data, self.ids, dtype=torch.float64)
            self.posed = sub(c.identity.double(), c.expression.double(), c.rotation.double(),
                             c.translation.double()).vertices
        self.fitted = fitted

    def cost(self, points: torch.Tensor, k: int) -> np.ndarray:
        """``(B, K, 3)`` posed points standing for iBUG point k -> ``(K,)`` mean normalised error."""
        c = self.fitted.coeffs
        pixels = project_points(points, c.focal.double(), c.principal.double()) - PIXEL_OFFSET
        truth = torch.as_tensor(self.fitted.truth[:, k], dtype=torch.float64)[:, None]
        scale = torch.as_tensor(self.fitted.scale, dtype=torch.float64)[:, None]
        return ((pixels - truth).norm(dim=-1) / scale).mean(0).numpy()

    def near(self, start: np.ndarray, radius: float) -> np.ndarray:
        """Local rows of the skin vertices within ``radius`` cm of ``start`` ``(3,)`` on the neutral."""
        return np.flatnonzero(np.linalg.norm(self.neutral - start, axis=1) < radius)

    def best_point(self, k: int, start: np.ndarray, radius: float, config: SearchConfig,
                   blend: tuple[float | torch.Tensor, torch.Tensor] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
        """Cheapest barycentric point for iBUG point k near ``start``: full-mesh ids ``(3,)``, weights ``(3,)``, cost.

        blend: optional ``(w, (B, 3) points)`` with w a number or ``(B,)`` per image: the
        cost is of ``(1 - w) * point + w * points``.
        """
        def mixed(points: torch.Tensor) -> torch.Tensor:
            if blend is None:
                return points
            w = torch.as_tensor(blend[0], dtype=points.dtype).reshape(-1, 1, 1)
            return (1 - w) * points + w * blend[1][:, None]

        rows = self.near(start, radius)
        vertex_cost = self.cost(mixed(self.posed[:, rows]), k)
        short = set(self.ids[rows[np.argsort(vertex_cost)[: config.shortlist]]].tolist())
        tris = self.triangles[[bool(short & set(t)) for t in self.triangles.tolist()]]
        weights = barycentric_grid(config.grid)
        corners = self.posed[:, self.position[tris]]  # (B, T, 3, 3)
        points = torch.einsum("gj,btjc->btgc", torch.as_tensor(weights), corners).flatten(1, 2)
        cost = self.cost(mixed(points), k)
        best = int(np.argmin(cost))
        return tris[best // len(weights)], weights[best % len(weights)], float(cost[best])


def barycentric_grid(n: int) -> np.ndarray:
    """``(G, 3)`` all weights ``(i, j, n - i - j) / n`` with i, j >= 0."""
    return np.array([(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)], dtype=np.float64) / n


def choose_table(model: MorphableModel, fitted: FittedSet,
                 config: SearchConfig = SearchConfig()) -> tuple[IbugTable, np.ndarray]:
    """The cheapest :class:`IbugTable` for ``fitted`` and each point's cost ``(68,)``."""
    search = SurfaceSearch(model, fitted)
    start = mediapipe68_table()
    neutral = model.data.neutral.astype(np.float64)
    starts = (neutral[start.vertex_ids] * start.barycentric[..., None]).sum(1)
    with torch.no_grad():
        contour = ModelLandmarks(model, ict68_table(model.data)).points(fitted.coeffs).double()
        side = view_side(fitted.coeffs).double()
    ids, weights = np.zeros((68, 3), np.int64), np.zeros((68, 3))
    contour_weight, contour_gain, costs = np.zeros(17), np.zeros(17), np.zeros(68)
    for k in range(68):
        sign = JAW_SIDE[k] if k < 17 else 0.0
        jaw = sign != 0
        options = [(w, g) for w in config.contour_weights for g in config.contour_gains] if jaw else [(0.0, 0.0)]
        radius = config.jaw_radius if k < 17 else config.radius
        found = []
        for w, g in options:
            per_image = (w + g * sign * side).clamp(0.0, 1.0)
            blend = (per_image, contour[:, k]) if bool((per_image > 0).any()) else None
            found.append((w, g, *search.best_point(k, starts[k], radius, config, blend)))
        w, g, ids[k], weights[k], costs[k] = min(found, key=lambda f: f[4])
        if k < 17:
            contour_weight[k], contour_gain[k] = w, g
    return IbugTable(ids, weights, contour_weight, contour_gain), costs


def main() -> None:
    from facecast.recon.landmarks.evaluation import lfpw_samples
    from facecast.recon.landmarks.ibug import default_table_path
    from facecast.recon.photo import PhotoReconstructor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "media")
    parser.add_argument("--split", choices=("even", "odd", "all"), default="even")
    parser.add_argument("--out", type=Path, default=default_table_path())
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = MorphableModel.load()
    samples = lfpw_samples(args.media)
    samples = samples if args.split == "all" else samples[{"even": 0, "odd": 1}[args.split]::2]
    fitted = FittedSet.from_samples(PhotoReconstructor(model), samples)
    table, costs = choose_table(model, fitted)
    save_ibug_table(table, args.out, cost=costs, chosen_on=np.array(f"LFPW-68 {args.split} ({len(fitted.scale)})"))
    print(f"wrote {args.out}: mean point cost {100 * costs.mean():.2f}% on {len(fitted.scale)} images; "
          f"jaw contour weights {table.contour_weight}, gains {table.contour_gain}")


if __name__ == "__main__":
    main()
