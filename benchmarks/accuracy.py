"""Reconstruction accuracy: 68-point NME of projected model landmarks on LFPW-68 and AFLW2000-3D.

Usage: FACECAST_ASSETS=../shared/assets python benchmarks/accuracy.py [--media ../shared/media]
       [--split even|odd|all] [--limit N] [--threads 1] [--json out.json]

For every image: MediaPipe finds all faces, the one overlapping the annotation is
fitted (:class:`facecast.recon.photo.PhotoReconstructor`), and the fitted mesh's
68 landmarks, projected into the image, are scored against the annotation.
Rows per dataset:

- ``reconstruct``: ``PhotoResult.landmarks68`` (what the product returns);
- ``mesh:<name>``: other 68-point definitions on the same fitted meshes
  (``mediapipe68``: the ``MEDIAPIPE_TO_IBUG68`` points of the MediaPipe mapping;
  ``ibug``: the table of :mod:`facecast.recon.landmarks.ibug`; ``ict``: ICT's landmark
  vertices with the dynamic jaw contour);
- ``detector``: the detector's own points mapped to 68 (a reference, not a model).

NME: mean point error / outer-eye-corner distance (iBUG points 37 and 46, 1-based),
over all 68 points, the 51 inner ones (``in51``) and the 17 jaw ones (``jaw``), all
with the same normaliser. Failures (no detected face overlapping the annotation) are
counted apart, not in the NME. ``split`` keeps the even or odd positions (0-based) of
the name-sorted images: data-driven choices are made on ``even`` LFPW images and
reported on ``odd`` and AFLW2000. Seconds: median detect + fit wall time per photo.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.recon.landmarks.correspondence import MEDIAPIPE_TO_IBUG68
from facecast.recon.landmarks.evaluation import SampleFit, aflw_samples, lfpw_samples, point_errors, reconstruct_samples

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
SPLITS = ("even", "odd", "all")


@dataclass
class Row:
    """One table row: NME figures are percentages over the images that did not fail."""

    dataset: str
    points: str
    n: int
    failures: int
    nme: float
    median: float
    inner: float
    jaw: float
    seconds: float


def split_samples(samples: list, split: str) -> list:
    """Even or odd positions (0-based) of a sorted list, or all of it."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return samples if split == "all" else samples[{"even": 0, "odd": 1}[split]::2]


def mesh_definitions(model) -> dict:
    """Name -> ``fn(coeffs) -> (B, 68, 2)`` detector pixels, for every available 68-point definition."""
    from facecast.recon.landmarks import ibug

    tables = {"mediapipe68": ibug.mediapipe68_table(), "ict": ibug.ict68_table(model.data)}
    if ibug.default_table_path().is_file():
        tables["ibug"] = ibug.load_ibug_table()
    return {name: ibug.ModelLandmarks(model, table) for name, table in tables.items()}


def score(dataset: str, label: str, fits: list[SampleFit], predicted: list[np.ndarray | None]) -> Row:
    """Row of NMEs for ``predicted`` ``(68, 2)`` per fit (``None`` = failure)."""
    pairs = [(p, f.sample.points) for p, f in zip(predicted, fits) if p is not None]
    seconds = float(np.median([f.seconds for f in fits]))
    if not pairs:
        return Row(dataset, label, len(fits), len(fits), *([float("nan")] * 4), seconds)
    errors = point_errors(np.stack([p for p, _ in pairs]), np.stack([t for _, t in pairs]))
    full = errors.mean(1)
    return Row(dataset, label, len(fits), len(fits) - len(pairs), 100 * full.mean(), 100 * np.median(full),
               100 * errors[:, 17:].mean(), 100 * errors[:, :17].mean(), seconds)


def dataset_rows(dataset: str, fits: list[SampleFit], definitions: dict) -> list[Row]:
    """Rows for the product's landmarks, each mesh definition and the detector."""
    rows = [score(dataset, "reconstruct", fits, [f.result.landmarks68 if f.result else None for f in fits])]
    done = [f for f in fits if f.result is not None]
    if done:
        from facecast.recon.model.coeffs import FaceCoeffs

        coeffs = FaceCoeffs.cat([f.result.coeffs for f in done])
        for name, define in definitions.items():
            points = iter(define(coeffs))
            rows.append(score(dataset, f"mesh:{name}", fits, [next(points) if f.result else None for f in fits]))
    detector = [f.detected.points[list(MEDIAPIPE_TO_IBUG68)] if f.detected is not None else None for f in fits]
    rows.append(score(dataset, "detector", fits, detector))
    return rows


def format_rows(rows: list[Row]) -> str:
    header = (f"{'dataset':14s} {'68 points':18s} {'n':>4s} {'fail':>4s} {'NME%':>6s} {'med%':>6s} "
              f"{'in51%':>6s} {'jaw%':>6s} {'s/photo':>7s}")
    lines = [f"{r.dataset:14s} {r.points:18s} {r.n:4d} {r.failures:4d} {r.nme:6.2f} {r.median:6.2f} "
             f"{r.inner:6.2f} {r.jaw:6.2f} {r.seconds:7.2f}" for r in rows]
    return "\n".join([header, *lines])


def main() -> None:
    from facecast.recon.fit.levenberg_marquardt import SolverConfig
    from facecast.recon.photo import PhotoConfig, PhotoReconstructor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=MEDIA)
    parser.add_argument("--split", choices=SPLITS, default="all", help="LFPW images to use (AFLW: always all)")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (after the split)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads outside the fit (the fit uses 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--mode", choices=("fast", "refine", "accurate"), default="accurate",
                        help="fit mode (fast / refine use the regressor)")
    parser.add_argument("--regressor", type=Path, default=None, help="regressor weights (default: shipped)")
    parser.add_argument("--refine-iterations", type=int, default=SolverConfig.iterations,
                        help="refine mode: Levenberg-Marquardt iterations after the regressor")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from facecast.recon.model.morphable import MorphableModel

    model = MorphableModel.load()
    reconstructor = PhotoReconstructor(model, config=PhotoConfig(mode=args.mode, regressor=args.regressor,
                                                                 refine=SolverConfig(iterations=args.refine_iterations)))
    definitions = mesh_definitions(model)
    datasets = {f"LFPW-68/{args.split}": split_samples(lfpw_samples(args.media), args.split)[: args.limit],
                "AFLW2000": aflw_samples(args.media)[: args.limit]}
    reconstruct_samples(reconstructor, datasets["AFLW2000"][:1])  # warm-up: model loading is not timed
    rows = []
    for name, samples in datasets.items():
        rows += dataset_rows(name, reconstruct_samples(reconstructor, samples), definitions)
    print(f"NME% / outer-eye-corner distance; torch threads {args.threads} (fit: 1)")
    print(format_rows(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
