"""Synthetic check of the photo fit: random ICT faces with known coefficients, fitted back.

Usage: FACECAST_ASSETS=../shared/assets python benchmarks/synthetic.py [--faces 60] [--seed 0]
       [--paths points render] [--threads 1] [--json out.json]

Faces: identity ~ N(0, 0.8) per mode; expression: 4 random channels of 53 set
uniformly in [0, 1], the rest 0; yaw U(-40, 40) degrees, pitch U(-20, 20), roll
U(-10, 10); the head ~35 cm in front of a camera of focal ``FOCAL_FACTOR * size`` (the
fit's own default, so no focal mismatch is measured here). Two detection paths:

- ``points``: the true MediaPipe-478 points of the mesh, projected, plus 1 px
  Gaussian noise per coordinate (the optimiser and model alone);
- ``render``: the face rendered (:class:`facecast.recon.learn.synthetic.SyntheticRenderer`,
  astronaut texture, SH light), MediaPipe on the render (the whole chain; failures =
  renders where MediaPipe finds no face).

Metrics: expression MAE over all 53 channels (``zeroMAE``: the MAE of always answering
0, for scale: the truth is sparse; ``actMAE``: the MAE over the channels the truth
moves only); rotation error, the geodesic angle
between true and fitted rotations (degrees); face-region vertex error (mm), mean
distance of the face-region vertices after a similarity (Umeyama, with scale)
alignment of the fitted posed mesh to the true one. Targets: MAE <= 0.08, rotation <= 2 degrees.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.recon.fit.landmark_fit import FOCAL_FACTOR
from facecast.recon.model.coeffs import FaceCoeffs, project_points
from facecast.recon.model.geometry import axis_angle_to_matrix
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import REGION_STARTS

PATHS = ("points", "render")


@dataclass
class Truth:
    """True coefficients of B faces: identity ``(B, 100)``, expression ``(B, 53)``, rotation, translation ``(B, 3)``."""

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor


@dataclass
class Row:
    path: str
    n: int
    failures: int
    expression_mae: float
    zero_mae: float
    active_mae: float
    rotation_deg: float
    rotation_deg_median: float
    vertex_mm: float
    vertex_mm_median: float
    seconds: float


def random_faces(count: int, seed: int, distance: float = 35.0) -> Truth:
    """``count`` random faces (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    identity = 0.8 * torch.randn(count, 100, generator=gen)
    expression = torch.zeros(count, 53)
    for b in range(count):
        channels = torch.randperm(53, generator=gen)[:4]
        expression[b, channels] = torch.rand(4, generator=gen)
    limits = torch.tensor([20.0, 40.0, 10.0])  # pitch (x), yaw (y), roll (z) degrees
    euler = torch.deg2rad((2 * torch.rand(count, 3, generator=gen) - 1) * limits)
    matrices = [axis_angle_to_matrix(torch.tensor([0.0, 0.0, r]))
                @ axis_angle_to_matrix(torch.tensor([0.0, y, 0.0]))
                @ axis_angle_to_matrix(torch.tensor([p, 0.0, 0.0])) for p, y, r in euler.tolist()]
    from facecast.recon.model.geometry import matrix_to_axis_angle

    rotation = matrix_to_axis_angle(torch.stack(matrices))
    translation = torch.cat([torch.randn(count, 2, generator=gen), torch.full((count, 1), -distance)], dim=1)
    return Truth(identity, expression, rotation, translation)


def rotation_error_degrees(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """``(B,)`` geodesic angle between axis-angle rotations ``a`` and ``b`` ``(B, 3)``."""
    relative = axis_angle_to_matrix(a.double()) @ axis_angle_to_matrix(b.double()).transpose(1, 2)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return np.degrees(torch.arccos(cos).numpy())


def similarity_error(source: np.ndarray, target: np.ndarray) -> float:
    """Mean distance after aligning ``source`` ``(N, 3)`` to ``target`` by a similarity (Umeyama)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s / len(s))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(sigma) @ d) / (s ** 2).sum(1).mean()
    return float(np.linalg.norm(scale * s @ rotation.T - t, axis=1).mean())


def score(path: str, model: MorphableModel, truth: Truth, fitted: list[FaceCoeffs | None], seconds: float) -> Row:
    """Compare fitted faces (``None`` = failure) with the truth."""
    keep = [b for b, c in enumerate(fitted) if c is not None]
    if not keep:
        return Row(path, len(fitted), len(fitted), *([float("nan")] * 8), seconds)
    coeffs = FaceCoeffs.cat([fitted[b] for b in keep])
    true_expression = truth.expression[keep]
    error = (coeffs.expression - true_expression).abs()
    mae, zero_mae = float(error.mean()), float(true_expression.abs().mean())
    active_mae = float(error[true_expression > 0].mean())
    rot = rotation_error_degrees(coeffs.rotation, truth.rotation[keep])
    face = slice(0, REGION_STARTS["head_neck"])
    with torch.no_grad():
        fit_v = model(coeffs.identity, coeffs.expression, coeffs.rotation, coeffs.translation).vertices[:, face]
        true_v = model(truth.identity[keep], truth.expression[keep], truth.rotation[keep],
                       truth.translation[keep]).vertices[:, face]
    mm = np.array([10 * similarity_error(f.numpy().astype(np.float64), t.numpy().astype(np.float64))
                   for f, t in zip(fit_v, true_v)])
    return Row(path, len(fitted), len(fitted) - len(keep), mae, zero_mae, active_mae,
               float(rot.mean()), float(np.median(rot)),
               float(mm.mean()), float(np.median(mm)), seconds)


def fit_points(reconstructor, truth: Truth, size: int, noise: float, seed: int) -> tuple[list, float]:
    """The ``points`` path: true MediaPipe points + noise -> fit (one batch)."""
    from facecast.recon.landmarks.detector import faces_from_points
    from facecast.recon.model.coeffs import PIXEL_OFFSET

    focal = torch.full((len(truth.identity),), FOCAL_FACTOR * size)
    principal = torch.full((len(truth.identity), 2), size / 2.0)
    with torch.no_grad():
        points = reconstructor.sparse.evaluate(truth.identity, truth.expression, truth.rotation, truth.translation)
        pixels = project_points(points, focal, principal).numpy().astype(np.float64) - PIXEL_OFFSET
    pixels += noise * np.random.default_rng(seed).standard_normal(pixels.shape)
    faces = faces_from_points(pixels)
    start = time.perf_counter()
    results = reconstructor.fit(faces, [(size, size)] * len(faces))
    return [r.coeffs for r in results], (time.perf_counter() - start) / len(faces)


def fit_renders(reconstructor, model: MorphableModel, truth: Truth, size: int) -> tuple[list, float]:
    """The ``render`` path: render, detect with MediaPipe, fit each face (``None`` where none is found)."""
    from facecast.recon.learn.synthetic import SyntheticRenderer, SyntheticScene
    from facecast.recon.photo import astronaut_texture

    scene = SyntheticScene(size=size, focal=FOCAL_FACTOR * size, distance=float(-truth.translation[0, 2]))
    renderer = SyntheticRenderer(model, astronaut_texture(model), scene)
    images = np.concatenate([renderer.render(truth.identity[b:b + 8], truth.expression[b:b + 8],
                                             truth.rotation[b:b + 8], truth.translation[b:b + 8])
                             for b in range(0, len(truth.identity), 8)])
    fitted, seconds = [], []
    for image in images:
        start = time.perf_counter()
        faces = reconstructor.detector.detect(image)
        fitted.append(reconstructor.fit(faces[:1], [(size, size)], [image])[0].coeffs if faces else None)
        seconds.append(time.perf_counter() - start)
    return fitted, float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=320, help="image side in pixels")
    parser.add_argument("--noise", type=float, default=1.0, help="points path: pixel noise (std)")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads outside the fit (the fit uses 1)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--view-offsets", action="store_true",
                        help="fit with the calibrated mapping's view-dependent offsets (off by default)")
    parser.add_argument("--expression-prior", type=float, default=None,
                        help="override FitConfig.expression_prior (L1 weight on expression)")
    parser.add_argument("--mode", choices=("fast", "refine", "accurate"), default="accurate",
                        help="fit mode (fast / refine use the regressor)")
    parser.add_argument("--regressor", type=Path, default=None, help="regressor weights (default: shipped)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from facecast.recon.fit.landmark_fit import FitConfig
    from facecast.recon.photo import PhotoConfig, PhotoReconstructor

    model = MorphableModel.load()
    fit = FitConfig() if args.expression_prior is None else FitConfig(expression_prior=args.expression_prior)
    reconstructor = PhotoReconstructor(model, config=PhotoConfig(mode=args.mode, regressor=args.regressor, fit=fit,
                                                                 view_offsets=args.view_offsets))
    truth = random_faces(args.faces, args.seed)
    rows = []
    if "points" in args.paths:
        rows.append(score("points", model, truth, *fit_points(reconstructor, truth, args.size, args.noise, args.seed)))
    if "render" in args.paths:
        rows.append(score("render", model, truth, *fit_renders(reconstructor, model, truth, args.size)))
    print(f"{'path':7s} {'n':>4s} {'fail':>4s} {'exprMAE':>8s} {'zeroMAE':>8s} {'actMAE':>7s} "
          f"{'rot°':>6s} {'rot°med':>7s} "
          f"{'face mm':>7s} {'mm med':>6s} {'s/face':>6s}")
    for r in rows:
        print(f"{r.path:7s} {r.n:4d} {r.failures:4d} {r.expression_mae:8.3f} {r.zero_mae:8.3f} "
              f"{r.active_mae:7.3f} {r.rotation_deg:6.2f} "
              f"{r.rotation_deg_median:7.2f} {r.vertex_mm:7.2f} {r.vertex_mm_median:6.2f} {r.seconds:6.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
