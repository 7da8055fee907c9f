"""Regressor latency (crop preparation, network, conversion; torch and ONNX) and held-out accuracy.

Latency: one 640x480 image, batch 1, torch with one thread; ``prepare`` is the crop
(``cv2.warpAffine``) and landmark normalisation from a :class:`DetectedFace`.
Accuracy (with ``--weights``): fresh synthetic faces of the training distribution
(``--seed`` differs from the training seeds), their crops rendered like the training
data: expression MAE, rotation error (degrees), landmark error (% of face size).

Usage:
  FACECAST_ASSETS=../shared/assets python benchmarks/regressor.py [--weights w.safetensors] [--faces 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facecast.recon.landmarks.detector import faces_from_points
from facecast.recon.learn.regressor import Regressor, RegressorConfig, coeffs_from_output, load_regressor


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds after three warm-up calls."""
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


def latency(regressor: Regressor, repeats: int) -> dict[str, float]:
    """Milliseconds per image at batch 1: prepare, network, convert, total; ONNX network when available."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    points = rng.uniform(0, 1, (478, 2)) * [180, 220] + [230, 130]
    face = faces_from_points(points[None], score=1.0)[0]
    inputs = regressor.prepare([face], [image])
    with torch.no_grad():
        flat = regressor(inputs.crops, inputs.landmarks)
        times = {
            "prepare": median_ms(lambda: regressor.prepare([face], [image]), repeats),
            "network": median_ms(lambda: regressor(inputs.crops, inputs.landmarks), repeats),
            "convert": median_ms(lambda: coeffs_from_output(regressor.split(flat), inputs, regressor.config), repeats),
            "predict (total)": median_ms(lambda: regressor.predict([face], [image]), repeats),
        }
    try:
        from facecast.recon.learn.onnx_twin import OnnxRegressor, export_onnx
    except ImportError:
        return times
    with tempfile.TemporaryDirectory() as folder:
        twin = OnnxRegressor(export_onnx(regressor, Path(folder) / "r.onnx"))
        times["onnx network"] = median_ms(lambda: twin(inputs.crops, inputs.landmarks), repeats)
        times["onnx predict (total)"] = median_ms(lambda: twin.predict([face], [image]), repeats)
    return times


def rotation_error_degrees(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """``(B,)`` geodesic angle between axis-angle rotations ``a`` and ``b`` ``(B, 3)``."""
    from facecast.recon.model.geometry import axis_angle_to_matrix

    relative = axis_angle_to_matrix(a.double()) @ axis_angle_to_matrix(b.double()).transpose(1, 2)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return np.degrees(torch.arccos(cos).numpy())


def accuracy(regressor: Regressor, faces: int, seed: int) -> dict[str, float]:
    """Errors on ``faces`` fresh synthetic faces (training distribution, astronaut-free flat texture)."""
    from facecast.recon.landmarks.correspondence import mediapipe478_mapping
    from facecast.recon.landmarks.sparse import SparseLandmarks
    from facecast.recon.learn.losses import reprojection_loss
    from facecast.recon.learn.synthetic import SyntheticRenderer
    from facecast.recon.learn.train_data import SyntheticConfig, SyntheticFaces, flat_texture
    from facecast.recon.model.morphable import MorphableModel

    model = MorphableModel.load()
    sparse = SparseLandmarks.build(model, mediapipe478_mapping())
    c = regressor.config
    renderer = SyntheticRenderer(model, flat_texture(512, noise=20.0)) if c.image_branch else None
    batch = SyntheticFaces(sparse, renderer, SyntheticConfig(), c.crop_size, c.crop_scale, c.focal_factor,
                           c.anchor).sample(faces, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        coeffs = regressor.regress(batch.inputs)
        rotation = rotation_error_degrees(coeffs.rotation, batch.truth.rotation)
        landmark = float(reprojection_loss(sparse, coeffs, batch.points, batch.inputs.frame.image_size, delta=1e-6))
    baseline = float(batch.truth.expression.abs().mean())  # MAE of predicting all zeros
    return {"expression MAE": float((coeffs.expression - batch.truth.expression).abs().mean()),
            "expression MAE of zeros": baseline, "rotation deg mean": float(rotation.mean()),
            "rotation deg median": float(np.median(rotation)),
            "identity RMSE": float((coeffs.identity - batch.truth.identity).square().mean().sqrt()),
            "landmark error % face size": 100 * landmark}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="regressor weights (default: untrained)")
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    regressor = load_regressor(args.weights) if args.weights else Regressor(RegressorConfig()).eval()
    params = sum(p.numel() for p in regressor.parameters())
    print(f"torch {torch.__version__}, 1 thread; {params:,} parameters; crop {regressor.config.crop_size} px")
    for name, ms in latency(regressor, args.repeats).items():
        print(f"{name:24s} {ms:7.2f} ms")
    if args.weights:
        for name, value in accuracy(regressor, args.faces, args.seed).items():
            print(f"{name:28s} {value:8.4f}")


if __name__ == "__main__":
    main()
