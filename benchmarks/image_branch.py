"""Regressor weights on a held-out rendered pool (issue #15): what each channel's regression reaches.

The pool (``facecast pool``, other seed and other photos than the training pool) holds renders seen
through MediaPipe with their truth, so this measures the fast path exactly as it runs (detected
points, crops cut around them) without tracking or smoothing. Per weights file:

- per ARKit channel: Pearson r of predicted vs true weight over the pool's faces (0 if constant);
- expression MAE over all channels, and on active (true > 0.1) entries;
- rotation error (mean geodesic degrees) and the pitch / yaw slope (least-squares slope of the
  predicted angle on the true one: 1 is unbiased, < 1 a shrunk pose);
- seconds per face of ``Regressor.regress`` at batch 64 on one thread (the network only).

    python benchmarks/image_branch.py --pool /tmp/heldout weights/regressor.safetensors new.safetensors \
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from expression_clips import _pearson, angles  # benchmarks/ is sys.path[0]


def euler(rotation: np.ndarray) -> np.ndarray:
    """``(N, 3)`` axis-angle -> ``(N, 3)`` pitch, yaw, roll degrees (``R = Rz Ry Rx``)."""
    from scipy.spatial.transform import Rotation

    zyx = Rotation.from_rotvec(rotation).as_euler("ZYX", degrees=True)
    return zyx[:, ::-1].copy()


def evaluate(path: Path, batch, names: list[str]) -> dict:
    from facecast.recon.learn.inputs import RegressorInputs
    from facecast.recon.learn.regressor import load_regressor

    regressor = load_regressor(path).eval()
    inputs = batch.inputs
    if not regressor.config.image_branch:
        inputs = RegressorInputs(None, inputs.landmarks, inputs.frame)
    outputs, seconds = [], 0.0
    with torch.no_grad():
        for start in range(0, batch.batch_size, 64):
            rows = torch.arange(start, min(start + 64, batch.batch_size))
            began = time.perf_counter()
            outputs.append(regressor.regress(inputs.select(rows)))
            seconds += time.perf_counter() - began
    expression = torch.cat([o.expression for o in outputs]).numpy()
    rotation = torch.cat([o.rotation for o in outputs])
    truth = batch.truth.expression.numpy()
    predicted, true = euler(rotation.numpy()), euler(batch.truth.rotation.numpy())
    slopes = [float(np.polyfit(true[:, k], predicted[:, k], 1)[0]) for k in range(2)]
    active = truth > 0.1
    return {
        "channels": {n: _pearson(expression[:, k], truth[:, k]) for k, n in enumerate(names)},
        "expression_mae": float(np.abs(expression - truth).mean()),
        "expression_mae_active": float(np.abs(expression - truth)[active].mean()),
        "rotation_error_deg": float(angles(rotation.numpy(), batch.truth.rotation.numpy()).mean()),
        "pitch_slope": slopes[0], "yaw_slope": slopes[1],
        "ms_per_face": 1000 * seconds / batch.batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+")
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from facecast.recon.learn.pool_files import load_pool
    from facecast.recon.model.arkit import ARKIT_52
    from facecast.recon.model.morphable import MorphableModel

    names = list(MorphableModel.load().expression_names)
    batch, _ = load_pool(args.pool, *manifest_crop(args.pool))
    print(f"held-out pool {args.pool}: {batch.batch_size} faces")
    report = {str(w): evaluate(w, batch, names) for w in args.weights}
    arkit = [n for n in ARKIT_52 if n in names]
    for path, r in report.items():
        good = sum(r["channels"][n] >= 0.8 for n in arkit)
        print(f"{path}: expr MAE {r['expression_mae']:.4f} (active {r['expression_mae_active']:.3f})  r>=0.8 "
              f"{good}/{len(arkit)}  rotation {r['rotation_error_deg']:.2f} deg  pitch slope {r['pitch_slope']:.3f}"
              f"  yaw slope {r['yaw_slope']:.3f}  {r['ms_per_face']:.2f} ms/face")
    print(f"{'channel':22s}" + "".join(f"{Path(p).stem[:14]:>16s}" for p in report))
    for n in names:
        print(f"{n:22s}" + "".join(f"{r['channels'][n]:16.2f}" for r in report.values()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def manifest_crop(directory: Path) -> tuple[int, float]:
    from facecast.recon.learn.pool_files import PoolManifest

    config = PoolManifest.read(directory).config
    return config.crop_size, config.crop_scale


if __name__ == "__main__":
    main()
