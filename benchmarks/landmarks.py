"""Landmark detector accuracy (NME) and speed on LFPW-68 and AFLW2000-3D samples.

Usage: python benchmarks/landmarks.py [--media ../shared/media] [--detector mediapipe fan] [--limit N]

NME: mean point error / outer-eye-corner distance (iBUG points 37 and 46,
1-based), over all 68 points and over the 51 inner points (no jaw). MediaPipe's
478 points are mapped to 68 with ``MEDIAPIPE_TO_IBUG68`` (and, for comparison,
the widely copied subset). Each image is searched for up to 4 faces; the one
whose box overlaps the annotation's box most is scored. A failure is an image
with no detected face overlapping the annotation (IoU < 0.3); failures are
counted apart, not in the NME. Time: median wall time of one ``detect`` call
(after a warm-up), on this machine's CPU.
AFLW2000 jaw points lie on the 3D jaw, not the outline, so its 68-point NME
penalises detectors that draw the outline (MediaPipe, FAN) on turned heads.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.recon.landmarks.correspondence import MEDIAPIPE_TO_IBUG68, MEDIAPIPE_TO_IBUG68_COMMON
from facecast.recon.landmarks.detector import DetectedFace, LandmarkDetector
from facecast.recon.landmarks.evaluation import Sample, aflw_samples, lfpw_samples, match_face, nme, read_rgb

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


@dataclass(frozen=True)
class Outcome:
    """One image's result: the matched face (None = failure) and the detect time (ms)."""

    face: DetectedFace | None
    milliseconds: float


def run_detector(detector: LandmarkDetector, samples: list[Sample]) -> list[Outcome]:
    """Detect on every sample; keep the face best overlapping the annotation."""
    detector.detect(read_rgb(samples[0].image))  # warm-up: model loading is not timed
    outcomes = []
    for sample in samples:
        image = read_rgb(sample.image)
        start = time.perf_counter()
        faces = detector.detect(image)
        ms = (time.perf_counter() - start) * 1e3
        outcomes.append(Outcome(match_face(faces, sample.points, min_iou=0.3), ms))
    return outcomes


def table_rows(name: str, detector_name: str, samples: list[Sample], outcomes: list[Outcome]) -> list[str]:
    """Formatted rows: one per 68-point subset of the detector."""
    found = [(s, o.face) for s, o in zip(samples, outcomes) if o.face is not None]
    failures = len(samples) - len(found)
    ms = float(np.median([o.milliseconds for o in outcomes]))
    subsets = {"own 68": None}
    if found and found[0][1].scheme == "mediapipe478":
        subsets = {"MEDIAPIPE_TO_IBUG68": MEDIAPIPE_TO_IBUG68, "common subset": MEDIAPIPE_TO_IBUG68_COMMON}
    rows = []
    for label, subset in subsets.items():
        if not found:
            rows.append(f"{name:9s} {detector_name:9s} {label:20s} {len(samples):4d} {failures:4d}  (no faces)")
            continue
        pred = np.stack([f.points[list(subset)] if subset else f.ibug68() for _, f in found])
        truth = np.stack([s.points for s, _ in found])
        full, inner = nme(pred, truth), nme(pred[:, 17:], truth[:, 17:], normaliser=(19, 28))
        rows.append(f"{name:9s} {detector_name:9s} {label:20s} {len(samples):4d} {failures:4d} "
                    f"{100 * full.mean():7.2f} {100 * np.median(full):7.2f} {100 * inner.mean():7.2f} "
                    f"{100 * np.median(inner):7.2f} {ms:8.1f}")
    return rows


def make_detector(name: str) -> LandmarkDetector | None:
    from facecast.recon import landmarks

    if name == "mediapipe":
        return landmarks.MediaPipeDetector(landmarks.MediaPipeConfig(max_num_faces=4))
    try:
        return landmarks.FanDetector()
    except ImportError as err:
        print(f"skipping fan: {err}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=MEDIA)
    parser.add_argument("--detector", nargs="+", default=["mediapipe", "fan"], choices=["mediapipe", "fan"])
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set")
    args = parser.parse_args()
    datasets = {"LFPW-68": lfpw_samples(args.media)[: args.limit],
                "AFLW2000": aflw_samples(args.media)[: args.limit]}
    header = (f"{'dataset':9s} {'detector':9s} {'68-point mapping':20s} {'n':>4s} {'fail':>4s} "
              f"{'NME%':>7s} {'med%':>7s} {'in51%':>7s} {'in-med%':>7s} {'ms/img':>8s}")
    rows = []
    for detector_name in args.detector:
        detector = make_detector(detector_name)
        if detector is None:
            continue
        for name, samples in datasets.items():
            rows += table_rows(name, detector_name, samples, run_detector(detector, samples))
        detector.close()
    print("NME% over 68 points, in51% over the 51 inner points (both / outer-eye-corner distance)")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
