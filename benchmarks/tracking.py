"""Video tracking: jitter with and without the temporal term, and speed.

Jitter is the mean frame-to-frame speed (mm/frame) of the face-region vertices of the
tracked mesh with the head pose removed (expression + identity only) and with the pose
(what a mesh sequence shows). Lower is steadier; a talking face really moves, so the
right number is not 0 (see the synthetic check in benchmarks/transfer.py for accuracy).

Usage: FACECAST_ASSETS=../shared/assets python benchmarks/tracking.py [--frames N] [--videos a.mp4 ...]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from facecast.pipelines.track import TrackJobConfig, VideoFit, iter_tracked
from facecast.recon.coeffs import FaceCoeffs
from facecast.recon.model import MorphableModel
from facecast.recon.tracking import TrackConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media" / "videos"


def jitter(model: MorphableModel, coeffs: FaceCoeffs, face: torch.Tensor) -> tuple[float, float]:
    """Mean face-vertex speed in mm/frame: (expression only, with head pose)."""
    with torch.no_grad():
        still = model(coeffs.identity, coeffs.expression).vertices[:, face]
        posed = model(coeffs.identity, coeffs.expression, coeffs.rotation, coeffs.translation).vertices[:, face]
    speed = lambda v: float((v[1:] - v[:-1]).norm(dim=-1).mean()) * 10  # noqa: E731
    return speed(still), speed(posed)


def run(video: Path, model: MorphableModel, weight: float, frames: int | None) -> dict:
    config = TrackJobConfig(tracking=replace(TrackConfig(), temporal_weight=weight), preview=False,
                            max_frames=frames)
    fit = VideoFit.build(model, config)
    start = time.perf_counter()
    rows = [tracked.coeffs for tracked, _, _ in iter_tracked(video, fit, config)]
    seconds = time.perf_counter() - start
    face = torch.as_tensor(np.flatnonzero(model.data.region_vertex_mask(["face"])))
    still, posed = jitter(model, FaceCoeffs.cat(rows), face)
    return {"video": video.name, "temporal_weight": weight, "frames": len(rows), "fps": len(rows) / seconds,
            "jitter_expression_mm": still, "jitter_posed_mm": posed, "gaps": len(fit.tracker.gaps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=Path, nargs="+",
                        default=[SHARED / n for n in ("talk1.mp4", "talk2.mp4", "obama.mp4")])
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.02])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = MorphableModel.load()
    print(f"torch threads {torch.get_num_threads()}")
    print(f"{'video':12s} {'temporal':>8s} {'frames':>6s} {'fps':>6s} {'jitter expr mm/f':>17s} {'posed mm/f':>11s}")
    results = []
    for video in args.videos:
        for weight in args.weights:
            r = run(video, model, weight, args.frames)
            results.append(r)
            print(f"{r['video']:12s} {weight:8.3f} {r['frames']:6d} {r['fps']:6.2f} "
                  f"{r['jitter_expression_mm']:17.3f} {r['jitter_posed_mm']:11.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
