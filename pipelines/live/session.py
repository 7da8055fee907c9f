"""A live session: source -> tracker -> every sender (and a recording), with the figures users ask for:
frames per second, frames dropped, and latency from a frame's decoding to its last packet sent.

Latency is kept as a histogram (0.5 ms bins up to 2 s), so a session of any length holds the same memory.
Ctrl-C ends a session cleanly: the senders close, the source stops, a recording is published.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.pipelines.live.frame import LiveFrame, Sender
from facecast.pipelines.live.recorder import Recorder
from facecast.pipelines.live.sources import LiveSource, SourceError, StreamConfig, open_camera, open_stream, open_video
from facecast.pipelines.live.tracker import LiveTracker

BIN_MS, BINS = 0.5, 4000
WARMUP = 2.0  # seconds at the start that LiveSession.steady leaves out
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass
class LiveStats:
    """Counts of a session: frames sent (``detected`` of them with a face), seconds, the source's
    ``delivered`` / ``dropped`` frames, send errors per sender, and the latency histogram."""

    frames: int = 0
    detected: int = 0
    seconds: float = 0.0
    delivered: int = 0
    dropped: int = 0
    interrupted: bool = False
    send_errors: dict[str, int] = field(default_factory=dict)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(BINS + 1, dtype=np.int64))

    def add_latency(self, seconds: float) -> None:
        self.histogram[min(int(seconds * 1000 / BIN_MS), BINS)] += 1

    def latency_ms(self, quantile: float) -> float:
        """The latency (ms) below which ``quantile`` of the frames were sent (nan before any)."""
        total = int(self.histogram.sum())
        if total == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(self.histogram), quantile * total, side="left"))
        return (k + 1) * BIN_MS

    @property
    def max_latency_ms(self) -> float:
        used = np.flatnonzero(self.histogram)
        return float("nan") if len(used) == 0 else (int(used[-1]) + 1) * BIN_MS

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        """The figures as JSON-ready numbers (latencies in ms)."""
        return {"frames": self.frames, "detected": self.detected, "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 3), "delivered": self.delivered, "dropped": self.dropped,
                "latency_ms": {"p50": self.latency_ms(0.5), "p95": self.latency_ms(0.95),
                               "max": self.max_latency_ms}, "send_errors": dict(self.send_errors)}

    def line(self) -> str:
        """One line for the terminal."""
        errors = "".join(f"; {name}: {n} send errors" for name, n in self.send_errors.items() if n)
        return (f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} frames/s, {self.detected} with a face); "
                f"source dropped {self.dropped} of {self.delivered + self.dropped}; latency p50 "
                f"{self.latency_ms(0.5):.1f} ms, p95 {self.latency_ms(0.95):.1f} ms, max {self.max_latency_ms:.1f} ms"
                f"{errors}")


def open_source(spec: str | int | Path, loop: bool = False, stream: StreamConfig = StreamConfig()) -> LiveSource:
    """A camera index (``0``), a stream URL (``rtsp://...``, ``http://...``) or a video file path."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return open_camera(int(spec))
    text = str(spec)
    if text.lower().startswith(STREAM_SCHEMES):
        return open_stream(text, stream)
    return open_video(text, loop=loop)


class LiveSession:
    """Runs ``tracker`` over ``source`` and sends every frame to ``senders``; ``recorder`` (optional) keeps
    a take; ``duration`` seconds (optional) ends the session."""

    def __init__(self, source: LiveSource, tracker: LiveTracker, senders: Sequence[Sender] = (),
                 recorder: Recorder | None = None, duration: float | None = None) -> None:
        self.source, self.tracker, self.senders = source, tracker, list(senders)
        self.recorder, self.duration = recorder, duration
        self.stats = LiveStats()
        #: the same figures without the first WARMUP seconds (the detector and network warming up)
        self.steady = LiveStats()
        self._steady_from: tuple[int, int] | None = None
        self._steady_start = 0.0

    def frames(self) -> Iterator[LiveFrame]:
        """Each frame after it was sent (and recorded); the session's figures in :attr:`stats`."""
        start = time.perf_counter()
        for frame in self.tracker.frames(self.source):
            with whole_frame():  # Ctrl-C lands between frames: each is sent to all, recorded and counted, or not
                self._deliver(frame, start)
            yield frame
            stats = self.stats
            if self.duration is not None and stats.seconds >= self.duration:
                return

    def _deliver(self, frame: LiveFrame, start: float) -> None:
        for sender in self.senders:
            sender.send(frame)
        if self.recorder is not None and self.tracker.last_tracked is not None:
            self.recorder.add(self.tracker.last_tracked, self.tracker.last_rgb)
        now = time.perf_counter()
        stats = self.stats
        stats.seconds = now - start
        if stats.seconds >= WARMUP and self._steady_from is None:
            self._steady_from, self._steady_start = self.source.stats(), now
        for figures in (stats, self.steady) if self._steady_from is not None else (stats,):
            figures.add_latency(now - frame.decoded)
            figures.frames += 1
            figures.detected += int(frame.detected)
        if self._steady_from is not None:
            self.steady.seconds = now - self._steady_start
        stats.delivered, stats.dropped = self.source.stats()

    def run(self, on_frame: Callable[[LiveFrame, LiveStats], None] | None = None) -> LiveStats:
        """Run to the end (the source ends, ``duration`` passes, or Ctrl-C); returns the figures. The
        recording is published (``recorded`` lists its files) unless the session failed."""
        self.recorded: list[Path] = []
        failed = True
        try:
            for frame in self.frames():
                if on_frame is not None:
                    on_frame(frame, self.stats)
            failed = False
        except KeyboardInterrupt:
            self.stats.interrupted, failed = True, False
        finally:
            self.close(failed)
        return self.stats

    def close(self, failed: bool = False) -> None:
        self.stats.delivered, self.stats.dropped = self.source.stats()
        if self._steady_from is not None:
            self.steady.delivered = self.stats.delivered - self._steady_from[0]
            self.steady.dropped = self.stats.dropped - self._steady_from[1]
        self.source.close()
        for sender in self.senders:
            self.stats.send_errors[sender.name] = int(getattr(sender, "errors", 0))
            sender.close()
        if self.recorder is not None:
            if failed:
                self.recorder.abort()
            else:
                self.recorded = self.recorder.close({"source": self.source.label, "frames_sent": self.stats.frames})
            self.recorder = None


@contextlib.contextmanager
def whole_frame() -> Iterator[None]:
    """Hold a SIGINT (Ctrl-C) that arrives inside the block until the block is done, then raise it as
    ``KeyboardInterrupt``. Only on the main thread (elsewhere Python delivers no signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


__all__ = ["LiveSession", "LiveStats", "SourceError", "open_source"]
