"""Batch layer on Ray: same outputs as the local engine, a crashed worker retried by Ray.

A local Ray instance (2 CPUs, no dashboard, loopback) is started and stopped in this
module; the tests skip when Ray is not installed (``pip install 'facecast[ray]'``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecast.pipelines.batch import runner as batch

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, address="local", log_to_driver=False)
    yield
    ray.shutdown()


def write_clip(path: Path, frames: int = 6) -> None:
    import av

    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=10)
        stream.width = stream.height = 48
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            rgb = np.zeros((48, 48, 3), np.uint8)
            rgb[:, : 8 * (index + 1)] = (200, 100, 50)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-inputs")
    write_clip(root / "clip.mp4")
    for index, name in enumerate(("a.png", "b-crash.png", "sub dir/ç.jpg")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (90, 60), (index * 60, 30, 200)).save(root / name)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("text\n")
    return root


def files_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith((".", "manifest.sqlite"))}


def workers_of(out: Path) -> set[str]:
    with sqlite3.connect(out / "manifest.sqlite") as db:
        return {w for (w,) in db.execute("SELECT worker FROM inputs WHERE status = 'done'")}


def test_ray_gives_the_local_outputs_and_retries_a_crashed_worker(local_ray, inputs, tmp_path):
    local = batch.run(inputs, tmp_path / "local", job="probe", engine="local", workers=2)
    markers = tmp_path / "markers"
    markers.mkdir()
    crash_once = {"crash_on": "crash", "crash_marker_dir": str(markers)}
    remote = batch.run(inputs, tmp_path / "ray", job="probe", engine="ray", workers=2,
                       job_options=crash_once, max_retries=2)
    assert len(list(markers.iterdir())) == 1  # b-crash.png killed its first worker
    statuses = {i.key: (i.status, i.error_type) for i in remote.inputs}
    assert statuses == {i.key: (i.status, i.error_type) for i in local.inputs}
    assert statuses == {"a_png": ("done", None), "b-crash_png": ("done", None),
                        "clip_mp4": ("done", None), "empty_mp4": ("failed", "MediaError"),
                        "notes_mp4": ("failed", "MediaError"), "sub dir/ç_jpg": ("done", None)}
    local_files, ray_files = files_of(tmp_path / "local"), files_of(tmp_path / "ray")
    assert len(local_files) == 8 and ray_files == local_files  # byte for byte
    assert workers_of(tmp_path / "ray").isdisjoint(workers_of(tmp_path / "local"))
    assert remote.frames == local.frames == 6 + 3


def test_ray_marks_an_input_failed_when_its_worker_crashes_on_every_retry(local_ray, inputs, tmp_path):
    summary = batch.run(inputs / "b-crash.png", tmp_path / "out", job="probe", engine="ray",
                        workers=2, job_options={"crash_on": "crash"}, max_retries=1)
    (report,) = summary.inputs
    assert (report.status, report.error_type, summary.exit_code) == ("failed", "WorkerCrashed", 1)
    assert "retries exhausted" in report.error_message
    assert not list((tmp_path / "out").glob(".tmp-*"))
