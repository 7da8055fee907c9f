"""Reading photos and videos into RGB uint8 arrays, with clear errors for bad files.

Photos: EXIF orientation is honoured; grayscale, palette, alpha, CMYK and 16-bit
images are converted to 8-bit RGB. Videos are streamed frame by frame with PyAV
(memory does not grow with the clip length).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: file suffixes taken as photos and as videos by the batch jobs and ``facecast label``
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"})

#: Images above this many pixels are refused before decoding (decompression-bomb guard); 12000x12000 passes.
MAX_PIXELS = 250_000_000
#: photos are decoded at most this many pixels on their longer side (JPEGs at a reduced scale straight from
#: the file, others shrunk once read): a face needs far less, and a 50 MP photo then costs ~50 MB, not GB
WORKING_SIDE = 4096


class MediaError(ValueError):
    """A photo or video cannot be read; the message names the file and the reason."""


def check_input_file(path: str | Path) -> Path:
    """``path`` if it is a regular file that can be opened; :class:`MediaError` saying what it is otherwise (missing,
    a folder, a FIFO or device, a symbolic link loop, not readable)."""
    import errno
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        reasons = {errno.ENOENT: "no such file", errno.ELOOP: "a loop of symbolic links",
                   errno.EACCES: "permission denied", errno.ENOTDIR: "no such file (a part of the path is a file)"}
        raise MediaError(f"{path}: {reasons.get(exc.errno, exc.strerror or str(exc))}") from None
    if stat.S_ISDIR(mode):
        raise MediaError(f"{path}: a folder, not a file (batch reads folders: `facecast batch {path} -o OUT`)")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise MediaError(f"{path}: {kind}, not a regular file (give a file saved on disk)")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{path}: permission denied")
    return path


def read_image(path: str | Path, working_side: int = WORKING_SIDE) -> np.ndarray:
    """Read a photo as RGB ``(H, W, 3)`` uint8, EXIF-rotated, any bit depth or colour model, at most
    ``working_side`` pixels on its longer side (:data:`WORKING_SIDE`); more than :data:`MAX_PIXELS` pixels
    is refused before anything is decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = check_input_file(path)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise _too_many_pixels(path, f"{width} x {height} pixels is")
            scale = working_side / max(width, height)
            if scale < 1 and img.format == "JPEG":
                img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))  # decode smaller
            img = ImageOps.exif_transpose(img)
            img.load()
            if max(img.size) > working_side:
                img.thumbnail((working_side, working_side), Image.Resampling.LANCZOS)
            return _to_rgb8(img)
    except MediaError:
        raise
    except Image.DecompressionBombError:  # PIL refuses some headers before ours can
        raise _too_many_pixels(path, "its header claims") from None
    except UnidentifiedImageError as exc:
        raise MediaError(f"{path}: not a readable image ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{path}: corrupt or truncated image ({exc})") from exc


def _too_many_pixels(path: Path, what: str) -> MediaError:
    return MediaError(f"{path}: {what} more than the {MAX_PIXELS // 10**6} MP a photo may have (a decompression "
                      "bomb, or shrink it first)")


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of a photo as shown (EXIF orientation applied), from its header: nothing decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable image ({exc})") from exc
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _to_rgb8(img) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        data = np.asarray(img).astype(np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or data.max() > 255 else 255.0
        gray = np.clip(np.round(data / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGBA").convert("RGB") if "A" in img.mode or img.mode == "P" else img.convert("RGB")
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise MediaError(f"image has unsupported shape {array.shape}")
    return np.ascontiguousarray(array)


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts of a video: frames per second, frame count (estimate if unknown), size."""

    fps: float
    n_frames: int
    width: int
    height: int


@dataclass(frozen=True)
class Frame:
    """One decoded frame: index from 0, presentation time in seconds, RGB ``(H, W, 3)`` uint8."""

    index: int
    time: float
    rgb: np.ndarray


def _open(path: Path):
    import av

    check_input_file(path)
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path}: holds no video stream")
    return container


def upright(frame) -> np.ndarray:
    """A decoded PyAV video frame as RGB ``(H, W, 3)`` uint8, turned as its display matrix says (phones store
    portrait video as landscape frames with a 90 / 180 / 270 degree rotation to show them with), the way
    players and FFmpeg's autorotate show it: counter-clockwise by ``frame.rotation`` degrees."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, quarter)) if quarter else rgb


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns (0-3) of a decoded frame's display rotation."""
    return round(float(frame.rotation or 0) / 90.0) % 4


def _display_rotation(container, stream) -> int:
    """The first frame's display rotation in degrees (0 when none, or when nothing decodes)."""
    try:
        frame = next(container.decode(stream), None)
    except Exception:  # noqa: BLE001 - probing only: decoding errors are reported by iter_frames
        return 0
    return 0 if frame is None else _quarter_turns(frame) * 90


#: frame rates taken as they are declared; outside, the other declaration (or 30) is used
PLAUSIBLE_FPS = (0.5, 1000.0)


def _frame_rate(stream) -> float:
    """The stream's average frame rate (frames / duration), or its declared one where the average is implausible
    (a clip whose timestamps jump by an hour averages 0.003 frames/s), else 30."""
    low, high = PLAUSIBLE_FPS
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate and low <= float(rate) <= high:
            return float(rate)
    return 30.0


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, frame count and size of the first video stream; the size as the frames are shown (a phone
    video stored on its side with a display rotation of 90 or 270 degrees swaps width and height)."""
    path = Path(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        rate = _frame_rate(stream)
        frames = stream.frames
        if not frames and stream.duration and stream.time_base:
            frames = int(round(float(stream.duration * stream.time_base) * float(rate)))
        width, height = stream.codec_context.width, stream.codec_context.height
        if _display_rotation(container, stream) in (90, 270):
            width, height = height, width
        return VideoInfo(float(rate), int(frames or 0), width, height)


@dataclass
class DecodeReport:
    """What decoding a video skipped: the times (s, from the packets) of packets that did not decode.
    Pass one to :func:`iter_frames` and read it afterwards; :meth:`warning` says it in one line."""

    skipped: list[float] = field(default_factory=list)
    #: frames whose size differed from the first frame's, rescaled to it (a stream that changed resolution)
    resized: int = 0
    #: frames whose time did not increase (timestamps that restart or repeat), given the next frame's slot
    retimed: int = 0
    #: (seconds decoded, seconds the header declares) when decoding ended well before the declared end (a cut file)
    ended_early: tuple[float, float] | None = None

    def warning(self, path: str | Path) -> str | None:
        parts = []
        if self.skipped:
            shown = ", ".join(f"{t:.2f}" for t in self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else "")
            parts.append(f"{len(self.skipped)} undecodable packet{'s' if len(self.skipped) > 1 else ''} skipped "
                         f"(at {shown} s); the frames around them are tracked")
        if self.resized:
            parts.append(f"the frame size changed mid-stream: {self.resized} frames rescaled to the first one's")
        if self.retimed:
            parts.append(f"{self.retimed} frames' timestamps went back or repeated: placed one frame apart")
        if self.ended_early:
            got, declared = self.ended_early
            parts.append(f"the video ends early, at {got:.2f} s of the {declared:.2f} s its header declares (a cut or "
                         "unfinished file?); the frames up to there are tracked")
        return f"{path}: " + "; ".join(parts) if parts else None


def _early_end(stream, last_time: float | None, rate: float) -> tuple[float, float] | None:
    """(end decoded, end declared) in seconds when the last frame came more than max(0.5 s, 5 frames) before the
    end the stream's header declares (its duration, edit lists applied); None otherwise or without a duration."""
    if last_time is None or not stream.duration or not stream.time_base:
        return None
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    declared = float(stream.duration * stream.time_base)
    got = last_time - start + 1.0 / rate
    return (got, declared) if declared - got > max(0.5, 5.0 / rate) else None


#: consecutive undecodable packets after which a video counts as broken from there on
MAX_BAD_RUN = 250


def iter_frames(path: str | Path, max_frames: int | None = None, report: DecodeReport | None = None
                ) -> Iterator[Frame]:
    """Decode frames one at a time as RGB, upright (:func:`upright`).

    A packet that does not decode is skipped (its time goes to ``report``) and decoding goes on, as players
    do; after :data:`MAX_BAD_RUN` bad packets in a row the rest counts as a broken tail. Frames of another
    size than the first are rescaled to it (counted in ``report.resized``); times always increase (a time
    that goes back or repeats becomes the last one plus a frame, counted in ``report.retimed``). Raises
    :class:`MediaError` on a video with no decodable frame.
    """
    import av

    path = Path(path)
    container = _open(path)
    count, bad_run, first, last_time = 0, 0, None, None
    report = report if report is not None else DecodeReport()
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = _frame_rate(stream)
        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:
                    if isinstance(exc, av.error.EOFError):
                        break
                    bad_run += 1
                    when = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base \
                        else count / rate
                    report.skipped.append(when)
                    if bad_run >= MAX_BAD_RUN:
                        break
                    continue
                bad_run = 0
                for frame in decoded:
                    if max_frames is not None and count >= max_frames:
                        return
                    time = float(frame.time) if frame.time is not None else count / rate
                    if last_time is not None and not time > last_time:  # timestamps that restart or repeat
                        time = last_time + 1.0 / rate
                        report.retimed += 1
                    last_time = time
                    rgb = upright(frame)
                    if first is None:
                        first = rgb.shape
                    elif rgb.shape != first:  # one size for the whole clip (the tracker follows one face)
                        import cv2

                        rgb = cv2.resize(rgb, (first[1], first[0]), interpolation=cv2.INTER_AREA)
                        report.resized += 1
                    yield Frame(count, time, rgb)
                    count += 1
        except av.error.FFmpegError as exc:  # the container itself breaks off: keep what decoded
            if count == 0:
                raise MediaError(f"{path}: corrupt video ({exc})") from exc
        report.ended_early = _early_end(stream, last_time, rate)
    if count == 0:
        raise MediaError(f"{path}: the video has no decodable frames")
