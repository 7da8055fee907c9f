"""Live sources: a video plays in real time with old frames dropped, never queued; a missing camera, a
stream that cannot open, stops or stalls end with one clear line and never hang."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
import pytest

from facecast.pipelines.live.sources import (
    Mailbox,
    SourceError,
    SourceFrame,
    StreamConfig,
    open_camera,
    open_stream,
    open_video,
)


def _clip(path, frames: int = 30, fps: int = 30, size: int = 64) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for k in range(frames):
            image = np.full((size, size, 3), (k * 8) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def test_the_mailbox_keeps_the_newest_frame_and_counts_the_dropped():
    box = Mailbox()
    for k in range(5):
        box.put(SourceFrame(k, k / 30, np.zeros((1, 1, 3), np.uint8), 0.0))
    assert box.take(1.0).index == 4 and box.dropped == 4
    box.finish()
    assert box.take(1.0) is None
    with pytest.raises(SourceError, match="no frame for 0 s"):
        Mailbox().take(0.05)


def test_a_video_plays_in_real_time_and_a_slow_reader_drops_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    _clip(path, frames=30)
    start = time.perf_counter()
    with open_video(path) as source:
        indices = [f.index for f in source]
    assert time.perf_counter() - start == pytest.approx(1.0, abs=0.25)  # 30 frames at 30 fps: about 1 s
    assert indices == sorted(indices) and len(indices) >= 25
    with open_video(path) as source:
        slow = []
        for frame in source:
            slow.append(frame.index)
            time.sleep(0.1)  # a tracker three times too slow
        delivered, dropped = source.stats()
    assert len(slow) <= 12 and dropped >= 15 and delivered + dropped >= 29
    assert np.all(np.diff(slow) >= 1)  # newest first: never an old frame after a newer one


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match="video .*nope.mp4 not found"):
        open_video(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="camera 57 is missing or busy"):
        open_camera(57)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(SourceError, match=f"stream http://127.0.0.1:{port}/x.mp4 cannot be opened"):
        open_stream(f"http://127.0.0.1:{port}/x.mp4", StreamConfig(open_timeout=2, read_timeout=2))
    assert time.perf_counter() - start < 5


class _Stalling(BaseHTTPRequestHandler):
    """The first ``good`` requests get the first part of a video and then a held connection that sends
    nothing more (a stall); later ones a 503 (the camera's server went away)."""

    payload = b""
    good = 2
    served = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).served += 1
        if type(self).served > self.good:
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        self.wfile.write(self.payload)
        self.wfile.flush()
        time.sleep(4)  # stall

    def log_message(self, *args):
        pass


def test_a_stalling_stream_is_reopened_then_given_up_without_hanging(tmp_path):
    path = tmp_path / "clip.ts"
    with av.open(str(path), "w", format="mpegts") as container:  # a streamable container
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for k in range(60):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), k, np.uint8),
                                                                   format="rgb24")))
        container.mux(stream.encode())
    _Stalling.payload, _Stalling.served = path.read_bytes(), 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    start, frames = time.perf_counter(), 0
    try:
        with open_stream(url, StreamConfig(open_timeout=2, read_timeout=1, reconnects=2, backoff=0.1)) as source:
            with pytest.raises(SourceError, match=f"stream {url} could not be reopened; gave up after 2 reconnects"):
                for _ in source.frames(timeout=10):
                    frames += 1
    finally:
        server.shutdown()
    assert frames >= 100  # the frames of both connections: the stall was bridged once
    assert _Stalling.served == 4  # opened, reopened after the stall, then two refused tries
    assert time.perf_counter() - start < 20
