"""Batch layer with the local engine: a corpus of bad inputs, each given its status.

Real light-weight work: the ``probe`` job reads every input through pipelines/media.py.

The "unreadable file" case: tests run as root here, and root reads a ``chmod 000``
file anyway. So the corpus holds a ``chmod 000`` JPEG (expected ``failed`` with
PermissionError for a normal user, ``done`` for root, decided by really trying to
open it) and, unreadable for everyone, a FIFO named ``pipe.mp4`` (opening it would
block; the batch refuses it as "not a regular file") and a broken symlink ``gone.jpg``.
"""

from __future__ import annotations

import json
import os
import unicodedata
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from batch_tools import manifest_rows, probe_json, visible_dirs_with_files, write_photo
from PIL import Image

from facecast.pipelines.batch import runner as batch

TALK = Path(__file__).resolve().parents[4] / "shared" / "media" / "videos" / "talk1.mp4"
SPACED = unicodedata.normalize("NFC", "dir with spaces/Zoë 東京 portrait.jpg")


# --- corpus -----------------------------------------------------------------------------

def write_clip(path: Path, frames: int = 10, size: int = 96) -> None:
    """A short low-resolution H.264 clip cut from the shared talking-head video."""
    import av

    with av.open(str(TALK)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(src.decode(video=0)):
            if index >= frames * 3:
                break
            if index % 3 == 0:
                image = frame.to_image().resize((size, size))
                for packet in stream.encode(av.VideoFrame.from_image(image)):
                    dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


VFR_MS = [0, 33, 66, 200, 233, 500, 533, 1000]


def write_vfr(path: Path) -> None:
    """A variable-frame-rate clip: 8 frames at irregular millisecond timestamps."""
    import av

    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=30)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, ms in enumerate(VFR_MS):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 30, np.uint8), "rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


def write_huge_png(path: Path, side: int = 12000) -> None:
    """A constant-colour RGB PNG of side x side, streamed row by row (~0.5 MB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    packer = zlib.compressobj(9)
    row = b"\x00" + bytes([90, 120, 200]) * side
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))


def root_reads_anything(path: Path) -> bool:
    try:
        path.open("rb").close()
        return True
    except PermissionError:
        return False


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    clips, photos = root / "clips", root / "photos"
    clips.mkdir()
    write_clip(clips / "clip.mp4")
    write_vfr(clips / "vfr.mp4")
    (clips / "truncated.mp4").write_bytes(TALK.read_bytes()[: TALK.stat().st_size * 2 // 5])
    (clips / "empty.mp4").write_bytes(b"")
    (clips / "notes.mp4").write_text("this is a text file named like a video\n")
    os.mkfifo(clips / "pipe.mp4")
    yy, xx = np.mgrid[0:120, 0:160]
    photos.mkdir()
    Image.fromarray(np.stack([xx % 256, yy * 2, (xx + yy) % 256], -1).astype(np.uint8)).save(
        photos / "noface.png")
    write_huge_png(photos / "huge.png")
    Image.new("L", (50, 40), 77).save(photos / "gray.png")
    Image.new("CMYK", (64, 48), (0, 50, 100, 0)).save(photos / "cmyk.jpg")
    Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16)).save(photos / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (80, 40), (10, 200, 30)).save(photos / "rotated.jpg", exif=exif)
    write_photo(photos / SPACED)
    os.symlink(photos / "missing-target.jpg", photos / "gone.jpg")
    write_photo(photos / "locked.jpg", (5, 5, 5))
    os.chmod(photos / "locked.jpg", 0)
    (photos / "readme.txt").write_text("not an input of probe\n")
    return root


def corpus_expectations(corpus: Path) -> dict[str, tuple[str, str | None]]:
    """key -> (status, error type) the probe job must give each corpus input."""
    readable = root_reads_anything(corpus / "photos/locked.jpg")
    locked = ("done", None) if readable else ("failed", "PermissionError")
    return {
        "clips/clip_mp4": ("done", None), "clips/vfr_mp4": ("done", None),
        "clips/truncated_mp4": ("failed", "MediaError"),  # moov atom is at the end: cut off
        "clips/empty_mp4": ("failed", "MediaError"), "clips/notes_mp4": ("failed", "MediaError"),
        "clips/pipe_mp4": ("failed", "InputError"),
        "photos/noface_png": ("done", None),  # probe does not look for faces; track will fail it
        "photos/huge_png": ("done", None), "photos/gray_png": ("done", None),
        "photos/cmyk_jpg": ("done", None), "photos/deep16_png": ("done", None),
        "photos/rotated_jpg": ("done", None), "photos/" + SPACED.replace(".jpg", "_jpg"): ("done", None),
        "photos/gone_jpg": ("failed", "InputError"), "photos/locked_jpg": locked,
        "photos/readme_txt": ("skipped", None),
    }


# --- the corpus through the local engine -------------------------------------------------

def test_corpus_every_input_gets_its_status_and_good_ones_their_outputs(corpus, tmp_path):
    out = tmp_path / "out"
    summary = batch.run(corpus, out, job="probe", workers=2)
    expected = corpus_expectations(corpus)
    assert {i.key: (i.status, i.error_type) for i in summary.inputs} == expected
    assert summary.exit_code == 1 and summary.count("skipped") == 1
    rows = manifest_rows(out)
    assert {k: (r["status"], r["error_type"]) for k, r in rows.items()} == expected
    assert "not a readable video" in rows["clips/truncated_mp4"]["error_message"]
    assert "empty file" in rows["clips/empty_mp4"]["error_message"]
    assert "named pipe" in rows["clips/pipe_mp4"]["error_message"]
    assert "broken symbolic link" in rows["photos/gone_jpg"]["error_message"]
    done = {k for k, (status, _) in expected.items() if status == "done"}
    assert visible_dirs_with_files(out) == done  # nothing half-written, nothing extra
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".trash-*"))
    for key in done:
        assert rows[key]["attempts"] == 1 and rows[key]["sha256"] and rows[key]["worker"]
        assert json.loads(rows[key]["outputs"]) == [f"{key}/probe.json", f"{key}/thumbnail.png"]
        assert max(Image.open(out / key / "thumbnail.png").size) <= 64
    assert probe_json(out, "clips/clip_mp4")["frames"] == 10
    vfr = probe_json(out, "clips/vfr_mp4")
    assert (vfr["frames"], vfr["first_time"], vfr["last_time"]) == (8, 0.0, 1.0)
    assert probe_json(out, "photos/huge_png")["width"] == 12000
    assert Image.open(out / "photos/huge_png/thumbnail.png").size == (64, 64)
    rotated = probe_json(out, "photos/rotated_jpg")
    assert (rotated["width"], rotated["height"]) == (40, 80)  # EXIF orientation applied
    assert Image.open(out / "photos/deep16_png/thumbnail.png").mode == "RGB"
    assert summary.frames == 10 + 8 + 1 * sum(k.startswith("photos/") for k in done)
