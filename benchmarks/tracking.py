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
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from facecast.pipelines.commands.track import TrackJobConfig, VideoFit, iter_tracked
from facecast.recon.fit.tracking import TrackConfig
from facecast.recon.model.coeffs import FaceCoeffs
from facecast.recon.model.morphable import MorphableModel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media" / "videos"


def jitter(model: MorphableModel, coeffs: FaceCoeffs, face: torch.Tensor) -> tuple[float, float]:
    """Mean face-vertex speed in mm/frame: (expression only, with head pose)."""
    with torch.no_grad():
        still = model(coeffs.identity, coeffs.expression).vertices[:, face]
        posed = model(coeffs.identity, coeffs.expression, coeffs.rotation, coeffs.translation).vertices[:, face]
    speed = lambda v: float((v[1:] - v[:-1]).norm(dim=-1).mean()) * 10  # noqa: E731
    return speed(still), speed(posed)


def resized(video: Path, size: tuple[int, int], frames: int | None, folder: Path) -> Path:
    """``video`` re-encoded at ``size`` (W, H) pixels (first ``frames`` frames) in ``folder``."""
    import cv2

    from facecast.pipelines.media import iter_frames, probe_video
    from facecast.recon.learn.synthetic import write_clip

    images = [cv2.resize(f.rgb, size, interpolation=cv2.INTER_AREA) for f in iter_frames(video, frames)]
    out = folder / f"{video.stem}_{size[0]}x{size[1]}.mp4"
    write_clip(out, np.stack(images), probe_video(video).fps)
    return out


def run(video: Path, model: MorphableModel, weight: float, frames: int | None, mode: str = "accurate",
        regressor: Path | None = None, fast_smoothing: bool = True) -> dict:
    config = TrackJobConfig(tracking=replace(TrackConfig(), temporal_weight=weight, mode=mode), preview=False,
                            max_frames=frames, regressor=regressor, fast_smoothing=fast_smoothing)
    fit = VideoFit.build(model, config)
    start = time.perf_counter()
    rows = [tracked.coeffs for tracked, _, _ in iter_tracked(video, fit, config)]
    seconds = time.perf_counter() - start
    face = torch.as_tensor(np.flatnonzero(model.data.region_vertex_mask(["face"])))
    still, posed = jitter(model, FaceCoeffs.cat(rows), face)
    return {"video": video.name, "mode": mode, "temporal_weight": weight, "frames": len(rows),
            "fps": len(rows) / seconds,
            "jitter_expression_mm": still, "jitter_posed_mm": posed, "gaps": len(fit.tracker.gaps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=Path, nargs="+",
                        default=[SHARED / n for n in ("talk1.mp4", "talk2.mp4", "obama.mp4")])
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.02])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--modes", nargs="+", choices=("accurate", "fast", "refine"), default=["accurate"],
                        help="fast / refine use the regressor (temporal weights apply to accurate and refine)")
    parser.add_argument("--regressor", type=Path, default=None, help="regressor weights (default: shipped)")
    parser.add_argument("--no-fast-smoothing", action="store_true", help="fast mode without its One Euro filter")
    parser.add_argument("--size", type=str, default=None,
                        help="re-encode every video at WxH first (e.g. 640x480 for the fast-mode speed figure)")
    args = parser.parse_args()
    model = MorphableModel.load()
    print(f"torch threads {torch.get_num_threads()}")
    print(f"{'video':20s} {'mode':8s} {'temporal':>8s} {'frames':>6s} {'fps':>6s} {'jitter expr mm/f':>17s} "
          f"{'posed mm/f':>11s}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos
        if args.size:
            width, height = (int(v) for v in args.size.lower().split("x"))
            videos = [resized(v, (width, height), args.frames, Path(tmp)) for v in videos]
        for video in videos:
            for mode in args.modes:
                for weight in (args.weights if mode != "fast" else [0.0]):
                    r = run(video, model, weight, args.frames, mode, args.regressor, not args.no_fast_smoothing)
                    results.append(r)
                    print(f"{r['video']:20s} {mode:8s} {weight:8.3f} {r['frames']:6d} {r['fps']:6.2f} "
                          f"{r['jitter_expression_mm']:17.3f} {r['jitter_posed_mm']:11.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
