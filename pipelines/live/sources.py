"""Where live frames come from: a camera, a video file played in real time, or a network stream.

Each source decodes on a thread of its own into a one-frame mailbox (:class:`Mailbox`): a newer frame
replaces one nobody took yet (counted as dropped), so processing that falls behind never works on
old frames. Errors on the thread (a camera unplugged, a stream that stops) reach the consumer as
:class:`SourceError` with one clear line; a stream that stalls or drops is reopened
(``StreamConfig.reconnects`` times) before it gives up, and no read waits longer than its timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class SourceError(RuntimeError):
    """A live source cannot give frames; the message says which and why, in one line."""


@dataclass(frozen=True)
class SourceFrame:
    """One decoded frame: index from 0 (frames the source skipped count), time in the source (s),
    RGB ``(H, W, 3)`` uint8, and ``decoded``: ``time.perf_counter()`` when decoding finished."""

    index: int
    time: float
    rgb: np.ndarray
    decoded: float


class Mailbox:
    """One slot: :meth:`put` replaces an untaken frame (``dropped`` counts them), :meth:`take` waits
    for a frame newer than the last one taken; :meth:`finish` ends the stream (with an error or not)."""

    def __init__(self) -> None:
        self._frame: SourceFrame | None = None
        self._done = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self.dropped = 0
        self.delivered = 0

    def put(self, frame: SourceFrame) -> None:
        with self._ready:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._ready.notify()

    def finish(self, error: BaseException | None = None) -> None:
        with self._ready:
            self._done, self._error = True, error
            self._ready.notify_all()

    def take(self, timeout: float | None = None) -> SourceFrame | None:
        """The newest frame; None when the stream ended; :class:`SourceError` when it failed or when
        ``timeout`` seconds pass without a frame."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._frame is not None or self._done, timeout):
                raise SourceError(f"no frame for {timeout:.0f} s")
            if self._frame is None:
                if self._error is not None:
                    raise self._error
                return None
            frame, self._frame = self._frame, None
            self.delivered += 1
            return frame


class _Reader:
    """A source's decoding thread: ``produce(put, stopped)`` decodes into the mailbox until the
    source ends or ``stopped()``."""

    def __init__(self, label: str, produce: Callable[[Callable[[SourceFrame], None], Callable[[], bool]], None],
                 release: Callable[[], None] | None = None):
        self.label = label
        self.mailbox = Mailbox()
        self._stop = threading.Event()
        self._produce = produce
        self._release = release
        self._thread = threading.Thread(target=self._run, name=f"facecast-source {label}", daemon=True)

    def _run(self) -> None:
        try:
            self._produce(self.mailbox.put, self._stop.is_set)
        except SourceError as exc:
            self.mailbox.finish(exc)
        except Exception as exc:  # a decoder's own error: one line naming the source
            self.mailbox.finish(SourceError(f"{self.label}: {exc}"))
        else:
            self.mailbox.finish()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def release(self) -> None:
        """Free what the source holds when it never started (an open camera or stream)."""
        if self._release is not None:
            self._release()


@dataclass(frozen=True)
class StreamConfig:
    """Network stream options: ``open_timeout`` / ``read_timeout`` seconds (no read waits longer),
    ``reconnects``: how many times a stream that stops or stalls is reopened before it gives up,
    ``backoff`` seconds between tries."""

    open_timeout: float = 5.0
    read_timeout: float = 5.0
    reconnects: int = 3
    backoff: float = 1.0


class LiveSource:
    """A started source: iterate for frames (newest first, older ones dropped); ``close()`` stops it.

    ``stats()`` gives ``(delivered, dropped)`` frame counts. Build one with :func:`open_camera`,
    :func:`open_video` or :func:`open_stream`.
    """

    def __init__(self, label: str, produce, first_frame_timeout: float = 10.0, release=None) -> None:
        self.label = label
        self._reader = _Reader(label, produce, release)
        self._first_timeout = first_frame_timeout
        self._started = False

    def frames(self, timeout: float = 10.0) -> Iterator[SourceFrame]:
        """Frames as they come (decoding starts with the first call: a video plays from its start then);
        :class:`SourceError` after ``timeout`` s without one."""
        if not self._started:
            self._started = True
            self._reader.start()
        first = True
        while True:
            try:
                frame = self._reader.mailbox.take(self._first_timeout if first else timeout)
            except SourceError as exc:
                if str(exc).startswith("no frame for"):
                    raise SourceError(f"{self.label}: {exc} (it stalled)") from None
                raise
            if frame is None:
                return
            first = False
            yield frame

    def __iter__(self) -> Iterator[SourceFrame]:
        return self.frames()

    def stats(self) -> tuple[int, int]:
        return self._reader.mailbox.delivered, self._reader.mailbox.dropped

    def close(self) -> None:
        if self._started:
            self._reader.close()
        else:
            self._reader.release()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(path: str | Path, speed: float = 1.0, loop: bool = False) -> LiveSource:
    """A video file played at its own frame rate (times ``speed``), as if it were a camera: frames are
    decoded as fast as they come and released at their presentation time; ``loop`` starts it over."""
    from facecast.pipelines.media import MediaError, iter_frames

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"video {path} not found")
    if not speed > 0:
        raise SourceError(f"speed must be > 0, got {speed}")

    def produce(put, stopped) -> None:
        start, offset, index = time.perf_counter(), 0.0, 0
        while True:
            last = 0.0
            try:
                for frame in iter_frames(path):
                    due = start + (offset + frame.time) / speed
                    wait = due - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    if stopped():
                        return
                    put(SourceFrame(index, offset + frame.time, frame.rgb, time.perf_counter()))
                    index, last = index + 1, frame.time
            except MediaError as exc:
                raise SourceError(str(exc)) from None
            if not loop:
                return
            offset += last + 1.0 / 30

    return LiveSource(f"video {path}", produce)


def open_camera(index: int, width: int | None = None, height: int | None = None) -> LiveSource:
    """Camera ``index`` (V4L2 through OpenCV): :class:`SourceError` when it is missing or busy."""
    import cv2

    capture = cv2.VideoCapture(index, cv2.CAP_V4L2) if hasattr(cv2, "CAP_V4L2") else cv2.VideoCapture(index)
    if not capture.isOpened():
        raise SourceError(f"camera {index} is missing or busy (no /dev/video{index}, or another app holds it)")
    if width:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    if height:
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    ok, first = capture.read()
    if not ok:
        capture.release()
        raise SourceError(f"camera {index} opened but gives no picture (busy, or not a capture device)")

    def produce(put, stopped) -> None:
        start, index_, image = time.perf_counter(), 0, first
        try:
            while not stopped():
                now = time.perf_counter()
                put(SourceFrame(index_, now - start, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), now))
                index_ += 1
                ok, image = capture.read()
                if not ok:
                    raise SourceError(f"camera {index} stopped giving frames (unplugged?)")
        finally:
            capture.release()

    return LiveSource(f"camera {index}", produce, release=capture.release)


def open_stream(url: str, config: StreamConfig = StreamConfig()) -> LiveSource:
    """A network stream (RTSP, HTTP, ... through PyAV), reopened when it stops or stalls."""
    import av

    from facecast.pipelines.media import upright

    def connect():
        options = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else {}
        try:
            return av.open(url, options=options, timeout=(config.open_timeout, config.read_timeout))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"stream {url} cannot be opened: {exc}") from None

    container = connect()  # the first failure is the user's to see at once

    def produce(put, stopped) -> None:
        current, start, index, tries = container, time.perf_counter(), 0, 0
        while not stopped():
            reason = "could not be reopened"
            if current is not None:
                try:
                    with current:
                        for frame in current.decode(video=0):
                            if stopped():
                                return
                            now = time.perf_counter()
                            put(SourceFrame(index, now - start, upright(frame), now))
                            index, tries = index + 1, 0
                    reason = "ended"
                except (av.error.FFmpegError, OSError) as exc:
                    reason = f"stalled or failed ({exc})"
            if tries >= config.reconnects:
                raise SourceError(f"stream {url} {reason}; gave up after {config.reconnects} reconnects")
            tries += 1
            time.sleep(config.backoff)
            try:
                current = connect()
            except SourceError:
                current = None

    return LiveSource(f"stream {url}", produce, first_frame_timeout=config.open_timeout + config.read_timeout,
                      release=container.close)
