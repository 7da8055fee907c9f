"""Render + backward time per image of the ICT head (face + back of head), and peak memory.

    python benchmarks/render.py --device cpu --batch 1 64
    python benchmarks/render.py --device cpu cuda --batch 1 64 --size 224 --repeats 5

Mesh: all 26,719 ICT vertices, the 28,068 triangles of the ``head`` regions. Each image
has its own pose; per-vertex albedo and SH light (both requiring grad) with per-pixel
shading; loss = mean of the image; time = forward + backward, per image. Backends:
the pure-torch rasterizer, and pytorch3d's when it is importable. Peak memory: CUDA
``max_memory_allocated``; on CPU the peak resident set size above the level before
the first call (sampled every millisecond from /proc/self/statm).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


class PeakRss:
    """Samples this process's resident set size in a thread; ``peak`` bytes above the start."""

    def __init__(self, every: float = 0.001) -> None:
        self.every, self.peak, self._stop = every, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss() - self.base)
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self.base = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_inputs(model, faces, batch: int, size: int, device: str):
    from facecast.render.cameras import PerspectiveCamera
    from facecast.render.shading import directional_light

    g = torch.Generator().manual_seed(0)
    rotation = (torch.rand(batch, 3, generator=g) - 0.5) * torch.tensor([0.4, 0.8, 0.2])
    with torch.no_grad():
        vertices = model(torch.zeros(batch, 100), torch.zeros(batch, 53), rotation, torch.zeros(batch, 3)).vertices
    camera = PerspectiveCamera.front((size, size), distance=80.0, focal=2.5 * size, device=device)
    albedo = torch.full((batch, vertices.shape[1], 3), 0.6, device=device)
    light = directional_light(torch.tensor([[0.3, 0.5, 1.0]], device=device).expand(batch, 3))
    return vertices.to(device), faces.to(device), camera, albedo, light


def time_config(renderer, inputs, repeats: int, device: str) -> tuple[list[float], list[float], int]:
    """Wall seconds and process CPU seconds per call of render + backward, and peak memory in bytes."""
    vertices, faces, camera, albedo, light = inputs

    def step() -> None:
        v = vertices.clone().requires_grad_()
        a = albedo.clone().requires_grad_()
        lt = light.clone().requires_grad_()
        renderer(v, faces, camera, a, lt).image.mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    times, cpu_times = [], []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with PeakRss() as rss:
        step()
        step()  # warm-up calls: not timed, but their memory counts
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    peak = torch.cuda.max_memory_allocated() - base if device == "cuda" else rss.peak
    return times, cpu_times, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", nargs="+", default=["cpu"], choices=["cpu", "cuda"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    os.environ.setdefault("FACECAST_ASSETS", str(REPO.parent / "shared" / "assets"))
    if args.threads:
        torch.set_num_threads(args.threads)
    from facecast.recon.model.morphable import MorphableModel
    from facecast.render.backends.pytorch3d import is_available
    from facecast.render.renderer import Renderer, RendererConfig

    model = MorphableModel.load()
    faces = model.triangles(("head",))
    backends = ["torch"] + (["pytorch3d"] if is_available() else [])
    print(f"ICT head: {model.n_vertices} vertices, {faces.shape[0]} triangles, {args.size} px, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("wall ms/image: median and best of the repeats; cpu ms/image: process CPU time (all threads),\n"
          "less sensitive to other jobs on a shared machine; peak MB: see the module docstring")
    print(f"{'device':7} {'backend':10} {'batch':>5} {'wall median':>12} {'wall best':>10} {'cpu median':>11} "
          f"{'peak MB':>8}")
    for device in args.device:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda    (not available, skipped)")
            continue
        for backend in backends:
            renderer = Renderer(RendererConfig(backend=backend))
            for batch in args.batch:
                inputs = make_inputs(model, faces, batch, args.size, device)
                times, cpu_times, peak = time_config(renderer, inputs, args.repeats, device)
                wall = [1000.0 * t / batch for t in times]
                cpu = statistics.median(cpu_times) * 1000.0 / batch
                print(f"{device:7} {backend:10} {batch:5d} {statistics.median(wall):12.1f} {min(wall):10.1f} "
                      f"{cpu:11.1f} {peak / 2**20:8.0f}")


if __name__ == "__main__":
    main()
