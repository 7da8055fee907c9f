"""Whole-process speed and memory of what users run: ``facecast track`` and ``facecast reconstruct``.

Every figure times a whole process started here, as a user starts it: wall seconds, CPU seconds
(user + system, the process and the workers it waits for), peak RSS of the largest of them, and
frames/s or seconds per photo. Nothing is left out: start-up (imports, model load, MediaPipe
graphs), decoding, detection, fitting, mesh evaluation, writing every output file.

- ``track``: each ``../shared/media/videos`` clip in ``fast`` and ``accurate`` mode, with and without
  the preview, beside a MediaPipe-only process over the same decoded frames (decode + Face Mesh in
  tracking mode, the floor for anything built on MediaPipe); stages from the run's ``track.json``.
- steady state and memory: a clip looped to 100 and to 1,000 frames; the marginal cost of a frame is
  ``(X(1000) - X(100)) / 900`` (start-up cancels out), and RSS(1000) - RSS(100) says whether memory
  grows with the clip length; with and without the preview. The pairs run ``--repeats`` times, round
  robin, and the medians are reported (one pair's marginal CPU varies by about +-1 ms a frame here).
- ``reconstruct``: one ``facecast reconstruct`` of one photo (cold start included) per mode, and
  ``facecast batch --job reconstruct --workers 1`` over 20 LFPW photos per mode (seconds per photo =
  the batch's wall time / 20, worker start included; marginal per photo from 10 vs 20 photos);
  worker RSS of a refine batch of 10 vs 100 photos.

Usage: FACECAST_ASSETS=../shared/assets python benchmarks/end_to_end.py [--json out.json] [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
FACECAST = str(Path(sys.executable).with_name("facecast"))


@dataclass
class Process:
    """One whole process: wall and CPU seconds, peak RSS (MB) of the largest process, exit status."""

    wall: float
    cpu: float
    rss_mb: float
    status: int


def measure(argv: list[str]) -> Process:
    """Run ``argv`` to completion; the kernel's accounting of it and of the children it waited for."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    error = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {error[-2000:]}")
    return Process(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code)


def mediapipe_only(video: str, max_frames: int | None, count_to: str) -> None:
    """The floor: decode ``video`` and run MediaPipe Face Mesh (tracking mode, one face) on every frame."""
    from facecast.pipelines.media import iter_frames
    from facecast.recon.landmarks.mediapipe_mesh import MediaPipeConfig, MediaPipeDetector

    with MediaPipeDetector(MediaPipeConfig(max_num_faces=1)) as detector:
        count = sum(1 for _ in detector.track(f.rgb for f in iter_frames(video, max_frames)))
    Path(count_to).write_text(str(count))


def looped_clip(source: Path, frames: int, target: Path) -> Path:
    """``source`` played forwards and backwards until it has ``frames`` frames (no jump at the seams)."""
    from facecast.pipelines.media import iter_frames, probe_video
    from facecast.render.preview import VideoWriter

    clip = [f.rgb for f in iter_frames(source)]
    cycle = clip + clip[-2:0:-1]
    with VideoWriter(target, fps=probe_video(source).fps, crf=18, preset="veryfast") as writer:
        for k in range(frames):
            writer.write(cycle[k % len(cycle)])
    return target


def track_run(video: Path, mode: str, preview: bool, scratch: Path) -> dict:
    out = scratch / f"take-{video.stem}-{mode}-{preview}"
    argv = [FACECAST, "track", str(video), "-o", str(out), "--mode", mode]
    process = measure(argv + (["--preview"] if preview else ["--no-preview"]))
    report = json.loads((out / "track.json").read_text())
    shutil.rmtree(out)
    frames = report["frames"]
    return {"video": video.name, "mode": mode, "preview": preview, "frames": frames, **asdict(process),
            "fps": frames / process.wall, "cpu_ms_per_frame": 1000 * process.cpu / frames,
            "stages": report.get("stage_seconds", {})}


def mediapipe_run(video: Path) -> dict:
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    process = measure([sys.executable, __file__, "--mediapipe-only", str(video), "--count-to", str(out)])
    frames = int(out.read_text())  # the frames it decoded (a clip with a broken packet has fewer than it says)
    out.unlink()
    return {"video": video.name, "frames": frames, **asdict(process), "fps": frames / process.wall,
            "cpu_ms_per_frame": 1000 * process.cpu / frames}


def photos(count: int, scratch: Path) -> Path:
    folder = scratch / f"photos-{count}"
    folder.mkdir(exist_ok=True)
    for image in sorted((MEDIA / "lfpw68-train").glob("*.jpg"))[:count]:
        shutil.copyfile(image, folder / image.name)
    return folder


def batch_run(folder: Path, mode: str, scratch: Path) -> dict:
    out = scratch / f"batch-{folder.name}-{mode}"
    process = measure([FACECAST, "batch", str(folder), "-o", str(out), "--job", "reconstruct", "--workers", "1",
                       "-O", f"mode={mode}", "--quiet"])
    count = len(list(folder.iterdir()))
    shutil.rmtree(out)
    return {"photos": count, "mode": mode, **asdict(process), "s_per_photo": process.wall / count}


def reconstruct_once(photo: Path, mode: str, scratch: Path) -> dict:
    out = scratch / f"one-{mode}" / "head.glb"
    process = measure([FACECAST, "reconstruct", str(photo), "-o", str(out), "--mode", mode])
    shutil.rmtree(out.parent)
    return {"photo": photo.name, "mode": mode, **asdict(process)}


def _print_track(rows: list[dict], floors: dict[str, dict]) -> None:
    print(f"{'video':10s} {'mode':8s} {'preview':7s} {'frames':>6s} {'wall s':>7s} {'cpu s':>6s} {'RSS MB':>7s} "
          f"{'fps':>6s} {'cpu ms/f':>8s} {'x MP cpu':>8s}  stages (s)")
    for r in rows:
        ratio = r["cpu_ms_per_frame"] / floors[r["video"]]["cpu_ms_per_frame"]
        stages = " ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
        print(f"{r['video']:10s} {r['mode']:8s} {str(r['preview']):7s} {r['frames']:6d} {r['wall']:7.1f} "
              f"{r['cpu']:6.1f} {r['rss_mb']:7.0f} {r['fps']:6.1f} {r['cpu_ms_per_frame']:8.1f} {ratio:8.2f}  {stages}")
    for name, r in floors.items():
        print(f"{name:10s} {'MP only':8s} {'-':7s} {r['frames']:6d} {r['wall']:7.1f} {r['cpu']:6.1f} "
              f"{r['rss_mb']:7.0f} {r['fps']:6.1f} {r['cpu_ms_per_frame']:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="one clip, 300 looped frames, fewer photos")
    parser.add_argument("--repeats", type=int, default=3,
                        help="trials of the steady-state pairs (their medians are reported; ~2.5 min each)")
    parser.add_argument("--mediapipe-only", help=argparse.SUPPRESS)
    parser.add_argument("--max-frames", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--count-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mediapipe_only:
        return mediapipe_only(args.mediapipe_only, args.max_frames, args.count_to)
    os.environ.setdefault("FACECAST_ASSETS", str(REPO.parent / "shared" / "assets"))
    videos = sorted((MEDIA / "videos").glob("*.mp4"))[: 1 if args.quick else None]
    report: dict = {"python": sys.version.split()[0], "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        floors = {v.name: mediapipe_run(v) for v in videos}
        rows = [track_run(v, mode, preview, scratch) for v in videos for mode in ("fast", "accurate")
                for preview in (True, False)]
        print("\n== track, whole processes (x MP cpu: CPU per frame / the MediaPipe-only process's)")
        _print_track(rows, floors)
        report["track"], report["mediapipe_only"] = rows, floors

        long = 300 if args.quick else 1000
        loops = {n: looped_clip(MEDIA / "videos" / "talk1.mp4", n, scratch / f"loop{n}.mp4") for n in (100, long)}
        names = ("mediapipe", "fast", "fast --preview", "accurate", "accurate --preview")
        trials: dict[str, list[dict]] = {name: [] for name in names}
        for _ in range(args.repeats):  # round robin, so that a slow spell of the machine hits every process
            for name in names:
                mode, preview = name.split()[0], name.endswith("--preview")
                runs = {n: (mediapipe_run(loop) if name == "mediapipe" else track_run(loop, mode, preview, scratch))
                        for n, loop in loops.items()}
                frames = runs[long]["frames"] - runs[100]["frames"]
                trials[name].append({"runs": runs, "cpu": 1000 * (runs[long]["cpu"] - runs[100]["cpu"]) / frames,
                                     "fps": frames / (runs[long]["wall"] - runs[100]["wall"]),
                                     "rss_growth_mb": runs[long]["rss_mb"] - runs[100]["rss_mb"]})
        steady = {name: {"trials": t, "marginal_cpu_ms_per_frame": statistics.median(x["cpu"] for x in t),
                         "marginal_cpu_range": [min(x["cpu"] for x in t), max(x["cpu"] for x in t)],
                         "marginal_fps": statistics.median(x["fps"] for x in t),
                         "rss_growth_mb": max(x["rss_growth_mb"] for x in t)}
                  for name, t in trials.items()}
        print(f"\n== steady state: talk1 looped to 100 and {long} frames; medians of {args.repeats} trials "
              "(CPU min-max in brackets), RSS of the first trial, growth the largest")
        print(f"{'process':18s} {'RSS 100':>8s} {'RSS ' + str(long):>8s} {'growth':>7s} {'marg. fps':>9s} "
              f"{'marg. cpu ms/f':>14s}")
        for name, s in steady.items():
            r, (low, high) = s["trials"][0]["runs"], s["marginal_cpu_range"]
            print(f"{name:18s} {r[100]['rss_mb']:8.0f} {r[long]['rss_mb']:8.0f} {s['rss_growth_mb']:7.0f} "
                  f"{s['marginal_fps']:9.1f} {s['marginal_cpu_ms_per_frame']:14.1f} [{low:.1f}-{high:.1f}]")
        floor = steady["mediapipe"]["marginal_cpu_ms_per_frame"]
        for name in names[1:]:
            ratios = [x["cpu"] / y["cpu"] for x, y in zip(trials[name], trials["mediapipe"])]
            print(f"{name}: marginal CPU per frame = {steady[name]['marginal_cpu_ms_per_frame'] / floor:.2f} x "
                  f"MediaPipe-only (median over median; per trial {min(ratios):.2f}-{max(ratios):.2f})")
        report["steady"] = steady

        photo = sorted((MEDIA / "lfpw68-train").glob("*.jpg"))[0]
        once = [reconstruct_once(photo, mode, scratch) for mode in ("fast", "refine", "accurate")]
        small, twenty = photos(10, scratch), photos(20, scratch)
        batches = {mode: {n: batch_run(folder, mode, scratch) for n, folder in ((10, small), (20, twenty))}
                   for mode in ("fast", "refine", "accurate")}
        print("\n== reconstruct: one photo per process (cold start), and batches of 10 / 20 photos in one worker")
        print(f"{'mode':8s} {'1 photo s':>9s} {'cpu s':>6s} {'RSS MB':>7s} {'20: s/photo':>11s} "
              f"{'marginal s/photo':>16s}")
        for one in once:
            b = batches[one["mode"]]
            marginal = (b[20]["wall"] - b[10]["wall"]) / 10
            print(f"{one['mode']:8s} {one['wall']:9.1f} {one['cpu']:6.1f} {one['rss_mb']:7.0f} "
                  f"{b[20]['s_per_photo']:11.2f} {marginal:16.2f}")
        report["reconstruct_once"], report["reconstruct_batches"] = once, batches

        many = photos(30 if args.quick else 100, scratch)
        memory = {n: batch_run(folder, "refine", scratch) for n, folder in ((10, small), (len(os.listdir(many)), many))}
        print("\n== batch worker RSS, refine: "
              + ", ".join(f"{n} photos {m['rss_mb']:.0f} MB" for n, m in memory.items()))
        report["batch_memory"] = memory
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
