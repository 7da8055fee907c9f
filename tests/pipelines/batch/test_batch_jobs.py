"""The real batch jobs (track, reconstruct) through the batch layer, good and bad inputs together."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecast.pipelines.batch import runner as batch
from facecast.pipelines.media import iter_frames


def _clip(source: Path, dest: Path, frames: int) -> None:
    import av

    with av.open(str(dest), "w") as container:
        stream = None
        for frame in iter_frames(source, max_frames=frames):
            if stream is None:
                stream = container.add_stream("mpeg4", rate=25)
                stream.height, stream.width = frame.rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame.rgb, format="rgb24")))
        container.mux(stream.encode(None))


def _statuses(out: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(out / "manifest.sqlite") as db:
        names = [d[1] for d in db.execute("PRAGMA table_info(inputs)")]
        rows = [dict(zip(names, row)) for row in db.execute("SELECT * FROM inputs")]
    return {Path(r["path"]).name: (r["status"], r.get("error_type")) for r in rows}


def test_track_job_processes_good_clips_and_reports_bad_ones(shared_dir, tmp_path):
    src = tmp_path / "footage dir"
    src.mkdir()
    _clip(shared_dir / "media/videos/talk2.mp4", src / "talk ü.mp4", 6)
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    out = tmp_path / "out"
    summary = batch.run([str(src / "*.mp4")], out, job="track", workers=1, job_options={"max_frames": "6"})
    statuses = _statuses(out)
    assert statuses["talk ü.mp4"][0] == "done" and statuses["broken.mp4"][0] == "failed"
    assert statuses["broken.mp4"][1] == "MediaError"
    assert summary.exit_code == 1
    done = next(p for p in out.iterdir() if p.is_dir() and p.name.startswith("talk"))
    assert sorted(p.name for p in done.iterdir()) == ["coeffs.csv", "coeffs.jsonl", "mesh.obj", "mesh.pc2",
                                                      "track.json"]
    assert json.loads((done / "track.json").read_text())["frames"] == 6
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_reconstruct_job_marks_faceless_photos_failed(shared_dir, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(shared_dir / "media/lfpw68-train/image_0002.jpg", src / "face.jpg")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(src / "wall.png")
    out = tmp_path / "out"
    summary = batch.run([str(src)], out, job="reconstruct", workers=1, job_options={"texture": "false"})
    statuses = _statuses(out)
    assert statuses["face.jpg"][0] == "done"
    assert statuses["wall.png"] == ("failed", "NoFaceError")
    assert summary.exit_code == 1
    record = json.loads((out / "face_jpg" / "head.json").read_text())
    assert len(record["landmarks"]["ibug68"]) == 68


def test_jobs_take_the_fit_mode(shared_dir, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(shared_dir / "media/lfpw68-train/image_0002.jpg", src / "face.jpg")
    out = tmp_path / "out"
    summary = batch.run([str(src)], out, job="reconstruct", workers=1, job_options={"mode": "refine"})
    assert summary.exit_code == 0 and _statuses(out)["face.jpg"][0] == "done"
    accurate = tmp_path / "accurate"
    batch.run([str(src)], accurate, job="reconstruct", workers=1, job_options={"texture": "false"})
    refined = json.loads((out / "face_jpg" / "head.json").read_text())["landmarks"]["ibug68"]
    fitted = json.loads((accurate / "face_jpg" / "head.json").read_text())["landmarks"]["ibug68"]
    # the two modes fit the same face to within a few pixels, and they are different fits
    gap = np.linalg.norm(np.array(refined) - np.array(fitted), axis=1)
    assert 0 < gap.mean() < 6, gap.mean()
    with pytest.raises(batch.BatchUsageError, match="mode must be one of fast, refine, accurate"):
        batch.run([str(src)], tmp_path / "bad", job="track", workers=1, job_options={"mode": "quick"})


def test_a_photo_worker_builds_one_pipeline_per_configuration(model):
    from facecast.pipelines.batch.facecast_jobs import PhotoWorker
    from facecast.pipelines.commands.reconstruct import ReconstructConfig
    from facecast.recon.photo import PhotoConfig

    worker = PhotoWorker(model)
    fast = worker.pipeline(ReconstructConfig(photo=PhotoConfig(mode="fast")))
    assert worker.pipeline(ReconstructConfig(photo=PhotoConfig(mode="fast"))) is fast
    assert worker.pipeline(ReconstructConfig(photo=PhotoConfig(mode="refine"))) is not fast
    assert fast.model is model
