"""Hostile and careless inputs for ``benchmarks/robustness.py``, made on the fly: photos in odd modes and
containers, bombs (headers that claim a huge picture), phone clips stored on their side, a corrupt packet, a
resolution switch, a one-hour timestamp gap, no-face stretches, broken GLB / glTF / JSON targets and takes.

Everything is written from the astronaut photo (scikit-image), talk1.mp4 (``../shared/media``) and an avatar
made by ``facecast avatar``; nothing is copied from ``../shared`` into the project.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from facecast.transfer.glb import GlbChunks, read_glb, write_glb


@dataclass(frozen=True)
class Sources:
    """The inputs every case starts from (made once per benchmark run)."""

    photo: Path        # the astronaut, 512 x 512 PNG
    talk: Path         # talk1.mp4
    frames: tuple      # talk1's first 30 frames as a 240 x 320 portrait picture (RGB uint8)
    avatar: Path       # a GLB written by `facecast avatar`
    take: Path         # a `facecast track` output folder of 12 frames


def portrait_frames(talk: Path, count: int = 30) -> tuple:
    """talk1's first ``count`` frames cut to a 240 x 320 portrait picture (a phone held upright)."""
    import cv2

    out = []
    with av.open(str(talk)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            out.append(np.ascontiguousarray(cv2.resize(rgb[:, 87:612], (240, 320))))
            if len(out) == count:
                break
    return tuple(out)


def write_clip(frames, path: Path, rotation: int = 0, rate: int = 24, pts: list[int] | None = None,
               codec: str = "libx264", faststart: bool = False) -> Path:
    """A clip of ``frames`` (H.264 unless ``codec``, container by suffix); stored turned so that a ``rotation``
    display matrix shows them upright; ``pts``: each frame's time in 1 / ``rate`` s (default 0, 1, 2, ...);
    ``faststart``: the MP4 index before the frames (as streaming sites write it)."""
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in frames]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = stored[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for k, image in enumerate(stored):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[k], Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio(path: Path, seconds: float = 1.0) -> Path:
    """An AAC file with a 440 Hz tone and no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(44100 * seconds)) / 44100)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_in_half(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``source``'s bytes at ``path`` (``source`` removed): a download that stopped."""
    data = source.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    source.unlink()
    return path


def corrupt_packet(clip: Path, index: int) -> None:
    """Overwrite three quarters of packet ``index`` of ``clip`` (its frame cannot be decoded)."""
    with av.open(str(clip)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(clip.read_bytes())
    position, size = packets[index]
    data[position + size // 4:position + size] = b"\xff" * (size - size // 4)
    clip.write_bytes(bytes(data))


def switching_clip(frames, path: Path) -> Path:
    """An MPEG-TS clip whose frame size changes half-way (and whose timestamps restart there)."""
    import cv2

    parts = []
    for k, size in enumerate(((240, 320), (360, 480))):
        part = path.with_suffix(f".part{k}.ts")
        half = len(frames) // 2
        with av.open(str(part), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            for image in frames[k * half:(k + 1) * half]:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(cv2.resize(image, size)), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))
    return path


def no_face_then_face(frames, path: Path, blank: int = 60, faces: bool = True) -> Path:
    """``blank`` frames of a textured wall, then ``frames`` (unless not ``faces``)."""
    rng = np.random.default_rng(0)
    wall = (rng.normal(120, 25, frames[0].shape).clip(0, 255)).astype(np.uint8)
    return write_clip([wall] * blank + (list(frames) if faces else []), path)


def save_photo(rgb: np.ndarray, path: Path, mode: str = "RGB", **options) -> Path:
    image = Image.fromarray(rgb)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, **options)
    return path


def enlarged(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` scaled up evenly to ``height`` rows and set in the middle of a ``width`` x ``height`` picture
    (a big camera's frame: the face keeps its proportions)."""
    side = height * rgb.shape[1] // rgb.shape[0]
    picture = np.full((height, width, 3), 128, np.uint8)
    left = (width - side) // 2
    picture[:, left:left + side] = np.asarray(Image.fromarray(rgb).resize((side, height), Image.Resampling.BICUBIC))
    return picture


def exif_rotated_jpeg(rgb: np.ndarray, path: Path) -> Path:
    """The photo stored turned 90 degrees with EXIF orientation 6 (viewers turn it back upright)."""
    image = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif.tobytes(), quality=92)
    return path


def jpeg_claiming(rgb: np.ndarray, path: Path, width: int, height: int) -> Path:
    """A small JPEG whose frame header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    save_photo(rgb, path, "L", quality=80)
    data = bytearray(path.read_bytes())
    at = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    path.write_bytes(bytes(data))
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (a few rows of data follow, compressed)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = zlib.compress(b"\x00" * (width + 1) * 8, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def group_photo(path: Path, faces: list[np.ndarray]) -> Path:
    """Portraits in a 3-column grid on a grey canvas (each face 5-8 % of the width)."""
    canvas = np.full((400 * ((len(faces) + 2) // 3), 1800, 3), 90, np.uint8)
    for k, face in enumerate(faces):
        row, column = divmod(k, 3)
        canvas[row * 400 + 50:row * 400 + 350, column * 600 + 150:column * 600 + 450] = face
    return save_photo(canvas, path, quality=92)


def glb_with(avatar: Path, path: Path, edit) -> Path:
    """``avatar`` with its JSON changed by ``edit(document)``."""
    base = read_glb(avatar.read_bytes())
    document = json.loads(json.dumps(base.document))
    edit(document)
    path.write_bytes(write_glb(GlbChunks(document, base.binary, base.others)))
    return path


def cut_glb(data: bytes, drop: int) -> bytes:
    """A GLB with its last ``drop`` bytes gone and the header's total length made to match (the BIN chunk's own
    length still claims the bytes that went)."""
    cut = bytearray(data[:-drop])
    struct.pack_into("<I", cut, 8, len(cut))
    return bytes(cut)


def gltf_with_files(avatar: Path, folder: Path, keep_buffer: bool = True) -> Path:
    """``avatar`` as a ``.gltf`` with its buffer in a ``.bin`` beside it (or the ``.bin`` missing)."""
    base = read_glb(avatar.read_bytes())
    document = json.loads(json.dumps(base.document))
    document["buffers"] = [{"uri": "avatar.bin", "byteLength": len(base.binary)}]
    if keep_buffer:
        (folder / "avatar.bin").write_bytes(base.binary)
    path = folder / "avatar.gltf"
    path.write_text(json.dumps(document))
    return path


def set_nodes(**values):
    def edit(document):
        for node in document.get("nodes", []):
            node.pop("matrix", None)
            node.update(values)
    return edit


def take_with(take: Path, folder: Path, line: int, key: str, value) -> Path:
    """A copy of a track output folder with ``key`` of JSON line ``line`` set to ``value``."""
    folder.mkdir(parents=True, exist_ok=True)
    records = [json.loads(x) for x in (take / "coeffs.jsonl").read_text().splitlines()]
    records[line][key] = value
    (folder / "coeffs.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (folder / "track.json").write_bytes((take / "track.json").read_bytes())
    return folder
