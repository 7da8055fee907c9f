"""Live mode as a VTuber runs it: ``facecast live`` on a 640x480 source played in real time at 30 fps,
sending VMC, iFacialMocap and Live Link Face packets to receivers on 127.0.0.1 (in this process).

The source: ``talk2.mp4`` (844x844, 25 fps) scaled to 480x480, padded to 640x480 and resampled to 30 fps
(5 s, looped with ``--loop``): the face fills the height as a webcam's would. Figures, from the command's
own ``--stats-json`` (the whole process: its decoding thread, MediaPipe, the regressor, retargeting,
encoding and sending every packet):

- achieved frames/s and frames the source dropped (a newer frame replaced one not yet taken);
- latency from a frame's decoding to its last packet sent, p50 / p95 / max, over the whole session and
  without its first 2 s (MediaPipe's graph opening and the first regressor call fall there);
- packets each receiver got (UDP on 127.0.0.1 loses none: they should equal the frames sent);
- RSS of the process (``/proc/PID/status``) 10 s in and at the end, and its largest value.

Usage: FACECAST_ASSETS=../shared/assets python benchmarks/live.py [--seconds 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
FACECAST = str(Path(sys.executable).with_name("facecast"))


def make_source(path: Path) -> Path:
    """The 640x480, 30 fps source clip (see the module doc)."""
    import av
    import cv2

    from facecast.pipelines.media import iter_frames

    frames = [f.rgb for f in iter_frames(MEDIA / "videos" / "talk2.mp4")]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for k in range(int(len(frames) / 25 * 30)):
            image = np.zeros((480, 640, 3), np.uint8)
            image[:, 80:560] = cv2.resize(frames[min(int(k * 25 / 30), len(frames) - 1)], (480, 480),
                                          interpolation=cv2.INTER_AREA)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


class Counter:
    """A UDP socket on 127.0.0.1 counting the datagrams it receives."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port, self.count, self._stop = self.socket.getsockname()[1], 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.socket.recv(65536)
                self.count += 1
            except TimeoutError:
                continue

    def close(self) -> int:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        self.socket.close()
        return self.count


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(seconds: float, folder: Path) -> dict:
    source = make_source(folder / "live_640x480_30.mp4")
    counters = {name: Counter() for name in ("vmc", "ifacialmocap", "livelink")}
    stats_file = folder / "stats.json"
    command = [FACECAST, "live", "--video", str(source), "--loop", "--duration", str(seconds),
               "--stats-json", str(stats_file)]
    for name, counter in counters.items():
        command += [f"--{name}", f"127.0.0.1:{counter.port}"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    while process.poll() is None:
        value = rss_mb(process.pid)
        if value is not None:
            samples.append((time.perf_counter() - start, value))
        time.sleep(1.0)
    out, err = process.communicate()
    wall = time.perf_counter() - start
    packets = {name: counter.close() for name, counter in counters.items()}
    if process.returncode != 0:
        raise SystemExit(f"facecast live failed ({process.returncode}):\n{err[-3000:]}")
    figures = json.loads(stats_file.read_text())
    early = next((v for t, v in samples if t >= 10.0), samples[0][1] if samples else None)
    return {"seconds": seconds, "wall_s": round(wall, 1), "session": figures["session"],
            "steady": figures["steady"], "packets": packets,
            "rss_mb": {"at_10s": early, "end": samples[-1][1] if samples else None,
                       "max": max(v for _, v in samples) if samples else None},
            "last_line": out.strip().splitlines()[-1] if out.strip() else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the session runs")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = run(args.seconds, Path(folder))
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
