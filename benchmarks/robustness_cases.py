"""The cases of ``benchmarks/robustness.py``: what each feeds the real CLI, what it must end in, and the checks
that catch a silently wrong result. Arguments may hold ``{dir}`` (the case's folder), ``{photo}``, ``{talk}``,
``{avatar}`` and ``{take}`` (see :class:`robustness_inputs.Sources`)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import robustness_inputs as make

FAST = ("--mode", "fast")


@dataclass(frozen=True)
class Case:
    """One run of ``facecast``.

    expect: ``ok`` (exit 0), ``error`` (exit 2, one ``error:`` line), ``either`` (one of those),
    ``signal`` (killed by ``signal``: 130 / 143 and nothing left), ``partial`` (batch: 1, some inputs failed).
    prepare: writes the inputs into the case folder; check: returns what is wrong with a result that exited as
    expected (a silent wrong result), or None; signal: (signal, glob of a file that must appear first, or the
    seconds to wait);
    tmpfs: size of a tmpfs mounted at ``{dir}/disk``; then: a second command run after the first; kept: globs of
    files (relative to the case folder) a failed run may leave: what a stopped batch finished and recorded.
    """

    name: str
    group: str
    args: tuple[str, ...]
    expect: str
    prepare: Callable[[Path, make.Sources], object] | None = None
    check: Callable[[Path, str], str | None] | None = None
    signal: tuple[int, str | float] | None = None
    tmpfs: str | None = None
    then: tuple[str, ...] | None = None
    kept: tuple[str, ...] = ()


def _glb_count(pattern: str, least: int):
    def check(folder: Path, stderr: str) -> str | None:
        found = len(list(folder.glob(pattern)))
        return None if found >= least else f"{found} files {pattern}, expected >= {least}"
    return check


def _roll_within(limit: float):
    def check(folder: Path, stderr: str) -> str | None:
        document = json.loads(next(folder.glob("**/h.json")).read_text())
        roll = document["head_pose"]["yaw_pitch_roll_deg"][2]
        return None if abs(roll) < limit else f"head roll {roll:.1f} degrees (the photo is upright)"
    return check


def _take_roll_within(limit: float):
    def check(folder: Path, stderr: str) -> str | None:
        rows = [json.loads(x) for x in (folder / "out" / "coeffs.jsonl").read_text().splitlines()]
        roll = float(np.median([r["yaw_pitch_roll_deg"][2] for r in rows]))
        return None if abs(roll) < limit else f"median head roll {roll:.1f} degrees (the clip shows it upright)"
    return check


def _frames(least: int, most: int, warning: str | None = None):
    def check(folder: Path, stderr: str) -> str | None:
        count = len((folder / "out" / "coeffs.jsonl").read_text().splitlines())
        if not least <= count <= most:
            return f"{count} frames tracked, expected {least}-{most}"
        if warning and warning not in stderr:
            return f"no warning saying {warning!r}"
        return None
    return check


def _animation_frames(most: int):
    def check(folder: Path, stderr: str) -> str | None:
        from facecast.transfer.glb import read_glb

        document = read_glb((folder / "out.glb").read_bytes()).document
        counts = [a["count"] for anim in document["animations"] for s in anim["samplers"]
                  for a in [document["accessors"][s["input"]]]]
        return None if max(counts) <= most else f"{max(counts)} keyframes (the driver has {most} frames)"
    return check


def _same_modes(folder: Path, stderr: str) -> str | None:
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (folder / "out").iterdir()}
    return None if len(set(modes.values())) == 1 else f"file modes differ: {modes}"


def _manifest_consistent(folder: Path, stderr: str) -> str | None:
    import sqlite3

    with sqlite3.connect(folder / "disk" / "b" / "manifest.sqlite") as db:
        rows = dict(db.execute("SELECT key, status FROM inputs").fetchall())
    done = [k for k, s in rows.items() if s == "done"]
    if not done or any(s not in ("done", "pending") for s in rows.values()):
        return f"manifest rows {rows}"
    missing = [k for k in done if not (folder / "disk" / "b" / k / "thumbnail.png").is_file()]
    return f"done without outputs: {missing}" if missing else None


def _write(name: str, data: bytes | str):
    def prepare(folder: Path, sources: make.Sources) -> None:
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return prepare


def _photos(folder: Path, sources: make.Sources) -> None:
    from PIL import Image

    (folder / "in").mkdir()
    for k in range(10):
        Image.effect_noise((300, 300), 80).convert("RGB").save(folder / "in" / f"p{k:02d}.png")


def _tree(folder: Path, sources: make.Sources) -> None:
    for sub in ("a/x", "b"):
        (folder / "photos" / sub).mkdir(parents=True)
        (folder / "photos" / sub / "face.png").write_bytes(sources.photo.read_bytes())


def _listening(folder: Path, sources: make.Sources):
    """A TCP socket listening on 127.0.0.1 (its port is ``{port}``; it stays open while the case runs)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _faces(count: int) -> list[np.ndarray]:
    from PIL import Image

    shared = Path(__file__).resolve().parents[2] / "shared" / "media" / "lfpw68-train"
    paths = sorted(shared.glob("*.jpg"))[:count]
    return [np.asarray(Image.open(p).convert("RGB").resize((300, 300))) for p in paths]


def cases() -> list[Case]:
    """Every case, in the order they run."""
    a = _astronaut
    rec = ("reconstruct",)
    photo_cases = [
        Case("photo: astronaut PNG", "photo", (*rec, "{photo}", "-o", "{dir}/h.glb"), "ok", check=_roll_within(10)),
        Case("photo: grayscale JPEG", "photo", (*rec, "{dir}/g.jpg", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "g.jpg", "L")),
        Case("photo: CMYK JPEG", "photo", (*rec, "{dir}/c.jpg", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "c.jpg", "CMYK")),
        Case("photo: 16-bit PNG", "photo", (*rec, "{dir}/p16.png", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "p16.png", "I;16")),
        Case("photo: RGBA PNG", "photo", (*rec, "{dir}/a.png", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "a.png", "RGBA")),
        Case("photo: palette GIF", "photo", (*rec, "{dir}/p.gif", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "p.gif", "P")),
        Case("photo: WebP", "photo", (*rec, "{dir}/p.webp", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "p.webp")),
        Case("photo: progressive JPEG", "photo", (*rec, "{dir}/pr.jpg", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "pr.jpg", progressive=True, quality=90)),
        Case("photo: multi-page TIFF", "photo", (*rec, "{dir}/m.tif", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(a(), d / "m.tif", save_all=True,
                                          append_images=[__import__("PIL.Image").Image.new("RGB", (64, 64))])),
        Case("photo: EXIF orientation 6", "photo", (*rec, "{dir}/e.jpg", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.exif_rotated_jpeg(a(), d / "e.jpg"), _roll_within(15)),
        Case("photo: 50 MP JPEG", "photo", (*rec, "{dir}/big.jpg", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.save_photo(make.enlarged(a(), 8660, 5773), d / "big.jpg", quality=85),
             _roll_within(10)),
        Case("photo: JPEG header claiming 22000 x 22000", "photo", (*rec, "{dir}/bomb.jpg", "-o", "{dir}/h.glb"),
             "error", lambda d, s: make.jpeg_claiming(a(), d / "bomb.jpg", 22000, 22000)),
        Case("photo: PNG header claiming 60000 x 60000", "photo", (*rec, "{dir}/bomb.png", "-o", "{dir}/h.glb"),
             "error", lambda d, s: make.png_claiming(d / "bomb.png", 60000, 60000)),
        Case("photo: 8 x 8 pixels", "photo", (*rec, "{dir}/t.png", "-o", "{dir}/h.glb"), "error",
             lambda d, s: make.save_photo(a()[::64, ::64].copy(), d / "t.png")),
        Case("photo: zero bytes", "photo", (*rec, "{dir}/z.jpg", "-o", "{dir}/h.glb"), "error", _write("z.jpg", b"")),
        Case("photo: text named .jpg", "photo", (*rec, "{dir}/t.jpg", "-o", "{dir}/h.glb"), "error",
             _write("t.jpg", "hello\n")),
        Case("photo: JPEG cut in half", "photo", (*rec, "{dir}/half.jpg", "-o", "{dir}/h.glb", *FAST), "either",
             lambda d, s: (make.save_photo(a(), d / "f.jpg"), (d / "half.jpg").write_bytes(
                 (d / "f.jpg").read_bytes()[:30000]), (d / "f.jpg").unlink())),
        Case("photo: noise, no face", "photo", (*rec, "{dir}/n.png", "-o", "{dir}/h.glb"), "error",
             lambda d, s: make.save_photo(np.random.default_rng(1).integers(0, 255, (400, 400, 3), np.uint8),
                                          d / "n.png")),
        Case("photo: a folder", "photo", (*rec, "{dir}", "-o", "{dir}/h.glb"), "error"),
        Case("photo: missing file", "photo", (*rec, "{dir}/nope.png", "-o", "{dir}/h.glb"), "error"),
        Case("photo: a FIFO", "photo", (*rec, "{dir}/fifo.png", "-o", "{dir}/h.glb"), "error",
             lambda d, s: os.mkfifo(d / "fifo.png")),
        Case("photo: /dev/zero", "photo", (*rec, "/dev/zero", "-o", "{dir}/h.glb"), "error"),
        Case("photo: a symlink loop", "photo", (*rec, "{dir}/loop.png", "-o", "{dir}/h.glb"), "error",
             lambda d, s: os.symlink(d / "loop.png", d / "loop.png")),
        Case("photo: 9 portraits, --all-faces", "photo",
             (*rec, "{dir}/group.jpg", "-o", "{dir}/g.glb", "--all-faces", *FAST, "--no-texture", "--no-preview"),
             "ok", lambda d, s: make.group_photo(d / "group.jpg", _faces(9)), _glb_count("g_*.glb", 9)),
        Case("photo: a face 4 % of the width", "photo", (*rec, "{dir}/far.jpg", "-o", "{dir}/h.glb", *FAST), "ok",
             lambda d, s: make.group_photo(d / "far.jpg", _faces(1))),
        Case("photo: --face-index 3 of 1", "photo", (*rec, "{photo}", "-o", "{dir}/h.glb", "--face-index", "3"),
             "error"),
        Case("photo: output name of 300 bytes", "photo", (*rec, "{photo}", "-o", "{dir}/" + "n" * 296 + ".glb"),
             "error"),
        Case("photo: output under a file", "photo", (*rec, "{photo}", "-o", "{dir}/file.txt/h.glb"), "error",
             _write("file.txt", "x")),
        Case("photo: output would overwrite the input", "photo", (*rec, "{dir}/h_preview.png", "-o", "{dir}/h.glb"),
             "error", lambda d, s: (d / "h_preview.png").write_bytes(s.photo.read_bytes())),
        Case("photo: unknown output suffix", "photo", (*rec, "{photo}", "-o", "{dir}/h.fbx"), "error"),
        Case("photo: --texture-size 3", "photo", (*rec, "{photo}", "-o", "{dir}/h.glb", "--texture-size", "3"),
             "error"),
        Case("photo: disk full (1 MB tmpfs)", "disk", (*rec, "{photo}", "-o", "{dir}/disk/h.glb"), "error",
             tmpfs="1m"),
    ]
    track = ("track",)
    video_cases = [
        Case("video: talk1, 30 frames", "video", (*track, "{talk}", "-o", "{dir}/out", "--max-frames", "30", *FAST),
             "ok", check=_frames(30, 30)),
        Case("video: phone clip, display matrix 90", "video", (*track, "{dir}/phone.mp4", "-o", "{dir}/out", *FAST),
             "ok", lambda d, s: make.write_clip(s.frames, d / "phone.mp4", 90), _take_roll_within(12)),
        Case("video: phone clip, display matrix 270", "video", (*track, "{dir}/p.mp4", "-o", "{dir}/out", *FAST),
             "ok", lambda d, s: make.write_clip(s.frames, d / "p.mp4", 270), _take_roll_within(12)),
        Case("video: one corrupt packet", "video", (*track, "{dir}/c.mp4", "-o", "{dir}/out", *FAST), "ok",
             lambda d, s: make.corrupt_packet(make.write_clip(s.frames, d / "c.mp4"), 15),
             _frames(27, 29, "undecodable packet skipped")),
        Case("video: frame size changes mid-stream", "video", (*track, "{dir}/s.ts", "-o", "{dir}/out", *FAST),
             "ok", lambda d, s: make.switching_clip(s.frames, d / "s.ts"), _frames(30, 30, "frame size changed")),
        Case("video: 60 no-face frames first (accurate)", "video", (*track, "{dir}/nf.mp4", "-o", "{dir}/out"),
             "ok", lambda d, s: make.no_face_then_face(s.frames, d / "nf.mp4"), _frames(90, 90)),
        Case("video: no face at all", "video", (*track, "{dir}/wall.mp4", "-o", "{dir}/out"), "error",
             lambda d, s: make.no_face_then_face(s.frames[:1], d / "wall.mp4", 40, faces=False)),
        Case("video: zero bytes", "video", (*track, "{dir}/z.mp4", "-o", "{dir}/out"), "error", _write("z.mp4", b"")),
        Case("video: text named .mp4", "video", (*track, "{dir}/t.mp4", "-o", "{dir}/out"), "error",
             _write("t.mp4", "not a video\n" * 100)),
        Case("video: MP4 cut in half", "video", (*track, "{dir}/half.mp4", "-o", "{dir}/out", *FAST), "either",
             lambda d, s: make.cut_in_half(make.write_clip(s.frames, d / "w.mp4"), d / "half.mp4")),
        Case("video: MP4, index first, cut at 70 %", "video", (*track, "{dir}/cut.mp4", "-o", "{dir}/out", *FAST),
             "ok", lambda d, s: make.cut_in_half(make.write_clip(s.frames, d / "w.mp4", faststart=True),
                                                 d / "cut.mp4", 0.7), _frames(3, 25, "the video ends early")),
        Case("video: MPEG-TS cut in half", "video", (*track, "{dir}/half.ts", "-o", "{dir}/out", *FAST), "ok",
             lambda d, s: make.cut_in_half(make.write_clip(s.frames, d / "w.ts"), d / "half.ts"), _frames(3, 20)),
        Case("video: WebM (VP9)", "video", (*track, "{dir}/c.webm", "-o", "{dir}/out", *FAST), "ok",
             lambda d, s: make.write_clip(s.frames[:12], d / "c.webm", codec="libvpx-vp9"), _frames(12, 12)),
        Case("video: MKV (MPEG-4 part 2)", "video", (*track, "{dir}/c.mkv", "-o", "{dir}/out", *FAST), "ok",
             lambda d, s: make.write_clip(s.frames[:12], d / "c.mkv", codec="mpeg4"), _frames(12, 12)),
        Case("video: 4K frames", "video", (*track, "{dir}/k.mp4", "-o", "{dir}/out", *FAST), "ok",
             lambda d, s: make.write_clip([__import__("cv2").resize(f, (2160, 3840)) for f in s.frames[:6]],
                                          d / "k.mp4"), _frames(6, 6)),
        Case("video: audio only", "video", (*track, "{dir}/a.m4a", "-o", "{dir}/out"), "error",
             lambda d, s: make.write_audio(d / "a.m4a")),
        Case("video: one frame", "video", (*track, "{dir}/one.mp4", "-o", "{dir}/out", *FAST), "ok",
             lambda d, s: make.write_clip(s.frames[:1], d / "one.mp4"), _frames(1, 1)),
        Case("video: --max-frames 0", "video", (*track, "{talk}", "-o", "{dir}/out", "--max-frames", "0"), "error"),
        Case("video: --smooth inf", "video", (*track, "{talk}", "-o", "{dir}/out", "--smooth", "inf"), "error"),
        Case("video: --smooth -1", "video", (*track, "{talk}", "-o", "{dir}/out", "--smooth", "-1"), "error"),
        Case("video: --mode bogus", "video", (*track, "{talk}", "-o", "{dir}/out", "--mode", "bogus"), "error"),
        Case("video: a folder named track.json in the output", "video", (*track, "{talk}", "-o", "{dir}/out"),
             "error", lambda d, s: (d / "out" / "track.json").mkdir(parents=True)),
        Case("video: output folder is a file", "video", (*track, "{talk}", "-o", "{dir}/out"), "error",
             _write("out", "x")),
        Case("video: --preview, file modes", "video",
             (*track, "{talk}", "-o", "{dir}/out", "--max-frames", "12", "--preview", *FAST), "ok", check=_same_modes),
        Case("video: disk full (3 MB tmpfs)", "disk", (*track, "{talk}", "-o", "{dir}/disk/out", *FAST), "error",
             tmpfs="3m"),
        Case("signal: SIGINT during track", "signal", (*track, "{talk}", "-o", "{dir}/out"), "signal",
             signal=(signal.SIGINT, "out/.facecast-track-*/*")),
        Case("signal: SIGTERM during track", "signal", (*track, "{talk}", "-o", "{dir}/out"), "signal",
             signal=(signal.SIGTERM, "out/.facecast-track-*/*")),
        Case("signal: SIGINT during transfer (at 4 s)", "signal",
             ("transfer", "--driver", "{talk}", "--target", "{avatar}", "-o", "{dir}/out.glb"), "signal",
             signal=(signal.SIGINT, 4.0)),
        Case("signal: SIGTERM during batch", "signal",
             ("batch", "{dir}/in", "-o", "{dir}/b", "--job", "track", "-O", "mode=fast", "--workers", "1", "-q"),
             "signal", lambda d, s: [make.write_clip(s.frames, d / "in" / f"c{k}.mp4") for k in range(3)
                                     if (d / "in").mkdir(exist_ok=True) or True],
             signal=(signal.SIGTERM, "b/c0_mp4/*"), kept=("b/.lock", "b/manifest.sqlite*", "b/c0_mp4/*")),
        Case("signal: SIGKILL during track, then a rerun", "signal", (*track, "{talk}", "-o", "{dir}/out", *FAST),
             "ok", signal=(signal.SIGKILL, "out/.facecast-track-*/*"),
             then=(*track, "{talk}", "-o", "{dir}/out", "--max-frames", "10", *FAST)),
    ]
    tr = ("transfer", "--driver", "{talk}", "--max-frames", "20", "--mode", "fast", "-o", "{dir}/out.glb")
    avatar_edit = make.glb_with
    target_cases = [
        Case("target: our avatar", "target", (*tr, "--target", "{avatar}"), "ok", check=_animation_frames(20)),
        Case("target: .gltf with its .bin", "target", (*tr, "--target", "{dir}/avatar.gltf"), "ok",
             lambda d, s: make.gltf_with_files(s.avatar, d)),
        Case("target: .gltf, .bin missing", "target", (*tr, "--target", "{dir}/avatar.gltf"), "error",
             lambda d, s: make.gltf_with_files(s.avatar, d, keep_buffer=False)),
        Case("target: GLB version 1", "target", (*tr, "--target", "{dir}/v1.glb"), "error",
             lambda d, s: (d / "v1.glb").write_bytes(s.avatar.read_bytes()[:4] + b"\x01\0\0\0"
                                                     + s.avatar.read_bytes()[8:])),
        Case("target: GLB cut mid-BIN", "target", (*tr, "--target", "{dir}/cut.glb"), "error",
             lambda d, s: (d / "cut.glb").write_bytes(s.avatar.read_bytes()[:-200000])),
        Case("target: GLB cut mid-BIN, header length fixed", "target", (*tr, "--target", "{dir}/cut.glb"), "error",
             lambda d, s: (d / "cut.glb").write_bytes(make.cut_glb(s.avatar.read_bytes(), 200000))),
        Case("target: zero quaternion", "target", (*tr, "--target", "{dir}/q.glb"), "error",
             lambda d, s: avatar_edit(s.avatar, d / "q.glb", make.set_nodes(rotation=[0, 0, 0, 0]))),
        Case("target: NaN rotation", "target", (*tr, "--target", "{dir}/n.glb"), "error",
             lambda d, s: avatar_edit(s.avatar, d / "n.glb", make.set_nodes(rotation=[float("nan"), 0, 0, 1]))),
        Case("target: meshes that are ints", "target", (*tr, "--target", "{dir}/m.glb"), "error",
             lambda d, s: avatar_edit(s.avatar, d / "m.glb", lambda doc: doc.__setitem__("meshes", [1, 2]))),
        Case("target: a node whose mesh is a string", "target", (*tr, "--target", "{dir}/s.glb"), "error",
             lambda d, s: avatar_edit(s.avatar, d / "s.glb", make.set_nodes(mesh="head"))),
        Case("target: VRM extension that is a string", "target", (*tr, "--target", "{dir}/v.glb"), "error",
             lambda d, s: avatar_edit(s.avatar, d / "v.glb", lambda doc: doc.__setitem__("extensions",
                                                                                         {"VRM": "x"}))),
        Case("target: JSON 200,000 deep", "target", (*tr, "--target", "{dir}/deep.json"), "error",
             _write("deep.json", "[" * 200_000 + "]" * 200_000)),
        Case("target: a photo (reconstructed first)", "target", (*tr, "--target", "{photo}"), "ok",
             check=_animation_frames(20)),
        Case("target: a text file", "target", (*tr, "--target", "{dir}/notes.txt"), "error",
             _write("notes.txt", "my avatar\n")),
        Case("target: missing", "target", (*tr, "--target", "{dir}/nope.glb"), "error"),
        Case("target: driver take with NaN", "target",
             ("transfer", "--driver", "{dir}/take", "--target", "{avatar}", "-o", "{dir}/out.glb"), "error",
             lambda d, s: make.take_with(s.take, d / "take", 3, "rotation", [float("nan"), 0, 0])),
        Case("target: driver with a one-hour timestamp gap", "target",
             ("transfer", "--driver", "{dir}/gap.mp4", "--target", "{avatar}", "-o", "{dir}/out.glb", *FAST), "ok",
             lambda d, s: make.write_clip(s.frames[:12], d / "gap.mp4", pts=[*range(6), *range(86400, 86406)]),
             _animation_frames(40)),
        Case("avatar: identity 1e30", "target", ("avatar", "--identity", "{dir}/id.json", "-o", "{dir}/a.glb"),
             "error", _write("id.json", json.dumps({"identity": [1e30] + [0.0] * 99}))),
        Case("avatar: identity 10**400", "target", ("avatar", "--identity", "{dir}/id.json", "-o", "{dir}/a.glb"),
             "error", _write("id.json", '{"identity": [1' + "0" * 400 + "" + ", 0" * 99 + "]}")),
    ]
    batch_cases = [
        Case("batch: disk full (400 KB tmpfs)", "disk",
             ("batch", "{dir}/in", "-o", "{dir}/disk/b", "--job", "probe", "-O", "thumbnail_size=256", "--workers",
              "1", "-q"), "error", _photos, _manifest_consistent, tmpfs="400k",
             kept=("disk/b/.lock", "disk/b/manifest.sqlite*", "disk/b/p*_png/*")),
        Case("batch: glob */../..", "batch", ("batch", "{dir}/photos/*/../..", "-o", "{dir}/out", "--job", "probe",
                                              "-q"), "ok", _tree),
        Case("batch: -O face_index=-1", "batch", ("batch", "{photo}", "-o", "{dir}/out", "--job", "reconstruct",
                                                  "-O", "face_index=-1"), "error"),
        Case("batch: a damaged manifest", "batch", ("batch", "{photo}", "-o", "{dir}/out", "--job", "probe", "-q"),
             "error", lambda d, s: ((d / "out").mkdir(), (d / "out" / "manifest.sqlite").write_bytes(
                 b"SQLite format 3\0" + b"\x07" * 4000)), kept=("out/.lock",)),  # (the batch folder's lock)
        Case("batch: Ray address nobody answers", "batch", ("batch", "{photo}", "-o", "{dir}/out", "--engine", "ray",
                                                            "--ray-address", "127.0.0.1:9"), "error"),
        Case("live: missing video", "live", ("live", "--video", "{dir}/nope.mp4", "--vmc", "127.0.0.1:39539",
                                             "--duration", "2"), "error"),
        Case("live: VMC to a host that does not resolve", "live",
             ("live", "--video", "{talk}", "--vmc", "no-such-host.invalid:39539", "--duration", "2"), "error"),
        Case("live: viewer port in use", "live",
             ("live", "--video", "{talk}", "--view", "--view-port", "{port}", "--duration", "2"), "error", _listening),
        Case("live: VMC port 99999", "live", ("live", "--video", "{talk}", "--vmc", "127.0.0.1:99999"), "error"),
        Case("live: a damaged profile", "live",
             ("live", "--video", "{talk}", "--profile", "{dir}/p.json", "--vmc", "127.0.0.1:39539", "--duration",
              "2"), "error",
             _write("p.json", '{"channels": {"jawOpen": {"gain": "loud"}}}')),
    ]
    return photo_cases + video_cases + target_cases + batch_cases
