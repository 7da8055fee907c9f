"""Time MorphableModel evaluation (full mesh and the sparse landmark path).

Usage: FACECAST_ASSETS=../shared/assets python benchmarks/model.py [--device cpu] [--batch 1 64]
"""

from __future__ import annotations

import argparse
import time

import torch

from facecast.recon.model.morphable import MorphableModel


def time_call(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds after two warm-up calls."""
    for _ in range(2):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return sorted(samples)[len(samples) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    for dtype in (torch.float32, torch.float64):
        model = MorphableModel.load(dtype=dtype, device=args.device)
        sparse = model.subset(model.data.landmarks68)
        for batch in args.batch:
            identity = torch.randn(batch, 100, dtype=dtype, device=args.device)
            expression = torch.rand(batch, 53, dtype=dtype, device=args.device)
            pose = torch.zeros(batch, 3, dtype=dtype, device=args.device)
            with torch.no_grad():
                full = time_call(lambda: model(identity, expression, pose, pose), args.repeats)
                lmk = time_call(lambda: sparse(identity, expression, pose, pose), args.repeats)
            print(f"{str(dtype):14s} B={batch:3d}  full mesh {full:8.2f} ms ({full / batch:6.3f} ms/face)"
                  f"  68 landmarks {lmk:7.3f} ms")


if __name__ == "__main__":
    main()
