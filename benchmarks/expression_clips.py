"""Expression fidelity on synthetic clips with scripted events (issue #15), tracked as `facecast track` does.

Each clip (150 frames at 30 fps by default) is one random ICT identity, photo-textured (the astronaut's
skin), rendered by our renderer over a real photo's background (an LFPW photo, blurred), encoded as
H.264 and tracked by the same code as ``facecast track`` (decode -> MediaPipe -> fit), in the
accurate, refine and fast modes. The script of a clip: neutral stretches and events one after another,
in a random order per clip: three scripted events cycling over the clips through blinks of 3-6 frames,
winks, brow raise, brow down, eye wide, cheek puff, jaw open with the lips closed and with them
open, a smile and a pucker (8-16 frames each but blinks); three single-channel events cycling
through the 51 ARKit channels ICT has (all but ``tongueOut``), so that every channel moves; and in
every other clip a slow head turn (25-40 degrees of yaw with up to 10 of pitch, over 24-30 frames).

Reported per mode:
- per ARKit channel: Pearson correlation of tracked and true weights over all frames of all clips
  (0 when the tracked channel never moves), and peak reach (the tracked peak over the true peak in
  each event's frames, averaged over the channel's events);
- blink peak reach (``eyeBlinkLeft/Right`` over the blink events);
- neutral frames: the largest weight any channel reads on frames whose truth is all 0 (95th percentile
  over those frames, and the channel that reads most);
- rotation error: mean geodesic angle (degrees) between tracked and true head rotation;
- jumps: the largest frame-to-frame change of the tracked rotation (degrees) on slow segments (the
  true rotation changes by < 0.2 degrees a frame there), and the mean of each clip's largest.

Targets (issue #15): blink reach >= 0.85; correlation >= 0.8 on >= 40 of the 51 channels; neutral <= 0.1;
rotation error <= 2 degrees; slow-segment jumps <= 1 degree.

    FACECAST_ASSETS=../shared/assets python benchmarks/expression_clips.py --json clips.json   # ~15 min
    FACECAST_ASSETS=../shared/assets python benchmarks/expression_clips.py --clips 4 --modes accurate

Timing: the whole run (render, encode, track) is printed; tracking alone per mode in frames per second.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
FPS = 30.0
GREEN = (0.0, 1.0, 0.0)  # the render's background, replaced by the photo's
#: scripted events: channels driven together (each to the event's peak)
EVENTS = {
    "blink": ("eyeBlinkLeft", "eyeBlinkRight"), "wink_left": ("eyeBlinkLeft",), "wink_right": ("eyeBlinkRight",),
    "brow_raise": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "brow_down": ("browDownLeft", "browDownRight"),
    "eye_wide": ("eyeWideLeft", "eyeWideRight"), "cheek_puff": ("cheekPuff",),
    "jaw_closed_lips": ("jawOpen", "mouthClose"), "jaw_open": ("jawOpen",),
    "smile": ("mouthSmileLeft", "mouthSmileRight"), "pucker": ("mouthPucker",),
}
SKIPPED = ("tongueOut",)


@dataclass
class Clip:
    """Truth of one clip: weights ``(T, 53)``, rotation ``(T, 3)`` axis-angle and the events
    ``[(name, channels, start, stop)]``."""

    identity: torch.Tensor
    weights: np.ndarray
    rotation: np.ndarray
    events: list


def _arkit_channels(names: list[str]) -> list[str]:
    from facecast.recon.model.arkit import ARKIT_52

    return [n for n in ARKIT_52 if n not in SKIPPED and _channel_index(names, n)]


def _channel_index(names: list[str], channel: str) -> list[int]:
    """Indices of an ARKit channel in the model's names (ICT splits browInnerUp and cheekPuff in two)."""
    if channel in names:
        return [names.index(channel)]
    return [names.index(channel + side) for side in ("Left", "Right") if channel + side in names]


def script(names: list[str], channels: list[str], clip: int, frames: int) -> Clip:
    """A random script for clip number ``clip`` (deterministic)."""
    rng = np.random.default_rng(1000 + clip)
    weights = np.zeros((frames, len(names)))
    rotation = np.zeros((frames, 3))
    named = [list(EVENTS)[(3 * clip + k) % len(EVENTS)] for k in range(3)]  # every event in every 11 clips
    singles = [f"single:{channels[(3 * clip + k) % len(channels)]}" for k in range(3)]  # every channel in 17
    plan = named + singles + (["turn"] if clip % 2 == 0 else [])
    rng.shuffle(plan)
    events, t = [], 8  # 8 neutral frames first
    for name in plan:
        if t >= frames - 4:
            break
        if name == "turn":  # slow: up to 40 degrees of yaw and 10 of pitch over 24-30 frames, and back
            length = int(rng.integers(24, 31))
            yaw, pitch = np.radians(rng.uniform(25, 40)) * rng.choice([-1, 1]), np.radians(rng.uniform(-10, 10))
            stop = min(frames, t + length)
            shape = np.sin(np.linspace(0, np.pi, length))[: stop - t]
            rotation[t:stop, 1], rotation[t:stop, 0] = yaw * shape, pitch * shape
            events.append((name, (), t, stop))
        else:
            driven = EVENTS.get(name, (name.split(":", 1)[-1],))
            length = int(rng.integers(3, 7)) if name == "blink" else int(rng.integers(8, 17))
            peak = 1.0 if name.startswith(("blink", "wink")) else float(rng.uniform(0.6, 1.0))
            stop = min(frames, t + length)
            ramp = min(2, length // 3)
            shape = np.ones(length)
            if ramp:
                shape[:ramp] = np.linspace(0.5, 1.0, ramp) if name == "blink" else np.linspace(0.2, 1.0, ramp)
                shape[-ramp:] = shape[:ramp][::-1]
            for channel in driven:
                for k in _channel_index(names, channel):
                    weights[t:stop, k] = peak * shape[: stop - t]
            events.append((name, driven, t, stop))
        t = stop + int(rng.integers(4, 9))  # neutral between events
    gen = torch.Generator().manual_seed(7 + clip)
    return Clip(torch.randn(1, 100, generator=gen) * 0.7, weights, rotation, events)


def backgrounds(count: int, size: int) -> list[np.ndarray]:
    """``count`` blurred LFPW photos, ``(size, size, 3)`` uint8 each."""
    import cv2
    from PIL import Image

    files = sorted((MEDIA / "lfpw68-train").glob("*.jpg"))[::7][:count]
    out = []
    for path in files:
        image = np.asarray(Image.open(path).convert("RGB").resize((size, size)))
        out.append(cv2.GaussianBlur(image, (0, 0), 2.0))
    return out


def render_clip(renderer, clip: Clip, background: np.ndarray) -> np.ndarray:
    """``(T, S, S, 3)`` uint8 frames of a clip over ``background``."""
    frames = []
    green = np.round(np.array(GREEN) * 255).astype(np.uint8)
    for part in np.array_split(np.arange(len(clip.weights)), max(1, len(clip.weights) // 16)):
        weights = torch.tensor(clip.weights[part], dtype=torch.float32)
        images = renderer.render(clip.identity.expand(len(part), -1), weights,
                                 torch.tensor(clip.rotation[part], dtype=torch.float32))
        empty = (images == green).all(-1)
        images[empty] = np.broadcast_to(background, images.shape)[empty]
        frames.append(images)
    return np.concatenate(frames)


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(T,)`` degrees between axis-angle rotations ``a`` and ``b`` ``(T, 3)``."""
    from facecast.recon.model.geometry import axis_angle_to_matrix

    ra, rb = axis_angle_to_matrix(torch.as_tensor(a)), axis_angle_to_matrix(torch.as_tensor(b))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return np.degrees(np.arccos(cos.clamp(-1, 1).numpy()))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-9 and b.std() > 1e-9 else 0.0


def score(names: list[str], channels: list[str], clips: list[Clip], tracked: list) -> dict:
    """The figures of one mode (see the module docstring)."""
    truth = np.concatenate([c.weights for c in clips])
    ours = np.concatenate([t.weights for t in tracked])
    per_channel = {}
    for channel in channels:
        index = _channel_index(names, channel)
        true_c, ours_c = truth[:, index].mean(1), ours[:, index].mean(1)
        reach = []
        for clip, track in zip(clips, tracked):
            for _, driven, start, stop in clip.events:
                if channel in driven:
                    peak = clip.weights[start:stop, index].mean(1).max()
                    if peak > 0:
                        reach.append(track.weights[start:stop, index].mean(1).max() / peak)
        per_channel[channel] = {"r": _pearson(ours_c, true_c), "reach": float(np.mean(reach)) if reach else None}
    blinks = [t.weights[s:e, [names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")]].max(0).mean()
              / c.weights[s:e, names.index("eyeBlinkLeft")].max()
              for c, t in zip(clips, tracked) for name, _, s, e in c.events if name == "blink"]
    neutral = (truth.max(1) == 0) & (np.concatenate([np.abs(c.rotation).max(1) for c in clips]) == 0)
    neutral_reads = ours[neutral]
    rotation_error = np.concatenate([angles(t.rotation, c.rotation) for c, t in zip(clips, tracked)])
    jumps = []
    for c, t in zip(clips, tracked):
        true_step = angles(c.rotation[1:], c.rotation[:-1])
        ours_step = angles(t.rotation[1:], t.rotation[:-1])
        slow = true_step < 0.2
        jumps.append(float(ours_step[slow].max()) if slow.any() else 0.0)
    good = [c for c, v in per_channel.items() if v["r"] >= 0.8]
    return {"channels": per_channel, "channels_r_ge_0.8": len(good), "of": len(channels),
            "below_0.8": sorted(set(channels) - set(good)), "blink_reach": float(np.mean(blinks)),
            "neutral_p95": float(np.percentile(neutral_reads.max(1), 95)),
            "neutral_worst_channel": names[int(np.percentile(neutral_reads, 95, axis=0).argmax())],
            "rotation_error_deg": float(rotation_error.mean()), "slow_jump_max_deg": float(max(jumps)),
            "slow_jump_mean_deg": float(np.mean(jumps))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--modes", default="accurate,refine,fast")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--temporal-weight", type=float, default=None, help="override TrackConfig.temporal_weight")
    parser.add_argument("--expression-prior", type=float, default=None, help="override the tracker's expression prior")
    parser.add_argument("--regressor", type=Path, default=None, help="fast / refine weights (default: the shipped)")
    parser.add_argument("--clip-dir", type=Path, default=None,
                        help="keep the rendered clips here and reuse them on the next run (same --clips/--frames)")
    args = parser.parse_args()

    from facecast.pipelines.commands.track import TrackJobConfig
    from facecast.pipelines.commands.transfer import track_driver
    from facecast.recon.fit.tracking import TrackConfig
    from facecast.recon.learn.synthetic import SyntheticRenderer, SyntheticScene, write_clip
    from facecast.recon.model.morphable import MorphableModel
    from facecast.recon.photo import astronaut_texture

    start = time.perf_counter()
    model = MorphableModel.load()
    names = list(model.expression_names)
    channels = _arkit_channels(names)
    renderer = SyntheticRenderer(model, astronaut_texture(model), SyntheticScene(background=GREEN))
    clips = [script(names, channels, k, args.frames) for k in range(args.clips)]
    report = {"clips": args.clips, "frames": args.frames, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.clip_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        videos = []
        for k, (clip, background) in enumerate(zip(clips, backgrounds(args.clips, renderer.scene.size))):
            videos.append(folder / f"clip{k:02d}_{args.frames}.mp4")
            if not videos[-1].is_file():
                write_clip(videos[-1], render_clip(renderer, clip, background), FPS)
        print(f"rendered {args.clips} clips in {time.perf_counter() - start:.0f} s", flush=True)
        for mode in args.modes.split(","):
            began = time.perf_counter()
            tracking = TrackConfig(mode=mode)
            if args.temporal_weight is not None:
                tracking = replace(tracking, temporal_weight=args.temporal_weight)
            if args.expression_prior is not None:
                tracking = replace(tracking, fit=replace(tracking.fit, expression_prior=args.expression_prior))
            job = TrackJobConfig(tracking=tracking, preview=False, regressor=args.regressor)
            tracked = [track_driver(v, model, job) for v in videos]
            seconds = time.perf_counter() - began
            figures = score(names, channels, clips, tracked)
            figures["track_fps"] = args.clips * args.frames / seconds
            report["modes"][mode] = figures
            print(f"{mode:9s} blink reach {figures['blink_reach']:.2f}  r>=0.8 {figures['channels_r_ge_0.8']}/"
                  f"{figures['of']}  neutral p95 {figures['neutral_p95']:.2f} ({figures['neutral_worst_channel']})  "
                  f"rotation {figures['rotation_error_deg']:.2f} deg  slow jump max {figures['slow_jump_max_deg']:.2f}"
                  f" mean {figures['slow_jump_mean_deg']:.2f} deg  {figures['track_fps']:.1f} frames/s", flush=True)
    print(f"{'channel':22s}" + "".join(f"{m + ' r':>12s}{'reach':>7s}" for m in report["modes"]))
    for channel in channels:
        row = ""
        for figures in report["modes"].values():
            c = figures["channels"][channel]
            row += f"{c['r']:12.2f}{(c['reach'] if c['reach'] is not None else float('nan')):7.2f}"
        print(f"{channel:22s}{row}")
    print(f"whole run {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
