"""A failed command leaves no output folder of its own behind (issue #16), and a good one writes its files
with the same permissions."""

from __future__ import annotations

import os
import stat

import av
import numpy as np
from typer.testing import CliRunner

from facecast.pipelines.cli import app

runner = CliRunner()


def _faceless_clip(path, frames=8):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for k in range(frames):
            image = np.full((96, 128, 3), 40 + 10 * k, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_a_track_that_finds_no_face_leaves_no_folder(tmp_path):
    clip = _faceless_clip(tmp_path / "grey.mp4")
    out = tmp_path / "new" / "take"
    result = runner.invoke(app, ["track", str(clip), "-o", str(out)])
    assert result.exit_code != 0 and "no face" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.mp4"]  # neither new/ nor new/take/


def test_a_transfer_with_a_missing_target_leaves_no_folder(tmp_path, shared_dir):
    out = tmp_path / "out" / "anim.glb"
    result = runner.invoke(app, ["transfer", "--driver", str(shared_dir / "media/videos/talk1.mp4"),
                                 "--target", str(tmp_path / "missing.glb"), "-o", str(out)])
    assert result.exit_code != 0 and "does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_track_writes_every_file_with_the_same_mode(tmp_path, shared_dir):
    out = tmp_path / "take"
    result = runner.invoke(app, ["track", str(shared_dir / "media/videos/talk1.mp4"), "-o", str(out),
                                 "--max-frames", "3", "--preview"])
    assert result.exit_code == 0, result.output
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert "preview.mp4" in modes and set(modes.values()) == {0o666 & ~umask}, modes
