"""Preview overlays and atomic PNG / MP4 writers."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from facecast.render.cameras import PerspectiveCamera
from facecast.render.preview import (
    draw_landmarks,
    draw_wireframe,
    overlay_render,
    shaded_overlay,
    to_uint8,
    write_png,
    write_video,
)


def test_to_uint8_rounds_and_clips():
    image = torch.tensor([[[-0.5, 0.5, 2.0], [0.2, 1.0, 0.0]]])
    np.testing.assert_array_equal(to_uint8(image), [[[0, 128, 255], [51, 255, 0]]])
    with pytest.raises(ValueError, match=r"image must have shape \(H, W, 3\)"):
        to_uint8(np.zeros((4, 4)))


def test_overlay_blends_only_under_the_mask():
    photo = np.full((4, 5, 3), 100, np.uint8)
    image = torch.ones(4, 5, 3)
    mask = torch.zeros(4, 5)
    mask[1, 2] = 1.0
    out = overlay_render(photo, image, mask, opacity=0.5)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[1, 2], [178, 178, 178])  # (100 + 255) / 2
    assert int(np.abs(out.astype(int) - 100).sum()) == 3 * 78
    with pytest.raises(ValueError, match="sizes differ"):
        overlay_render(photo, image, torch.zeros(3, 5))


def test_landmark_dots_land_on_their_pixels():
    out = draw_landmarks(np.zeros((20, 30, 3), np.uint8), torch.tensor([[10.5, 5.5], [25.5, 15.5]]),
                         colour=(255, 0, 0), radius=1)
    np.testing.assert_array_equal(out[5, 10], [255, 0, 0])  # pixel row 5, column 10 has centre (10.5, 5.5)
    np.testing.assert_array_equal(out[15, 25], [255, 0, 0])
    np.testing.assert_array_equal(out[10, 18], [0, 0, 0])
    with pytest.raises(ValueError, match="points contains NaN"):
        draw_landmarks(np.zeros((8, 8, 3), np.uint8), np.array([[np.nan, 1.0]]))


def test_wireframe_draws_edges_and_only_visible_faces():
    points = np.array([[2.5, 2.5], [17.5, 2.5], [2.5, 17.5], [30.5, 2.5], [38.5, 2.5], [30.5, 10.5]])
    faces = np.array([[0, 2, 1], [3, 5, 4]])
    out = draw_wireframe(np.zeros((20, 40, 3), np.uint8), points, faces, colour=(0, 255, 0))
    assert out[2, 10, 1] > 200 and out[10, 2, 1] > 200  # top and left edges of the first triangle
    assert out[2, 34, 1] > 200  # second triangle drawn
    assert out[8, 8].sum() == 0  # inside, no edge
    seen = np.full((20, 40), -1)
    seen[5, 5] = 0
    only_first = draw_wireframe(np.zeros((20, 40, 3), np.uint8), points, faces, pix_to_face=seen)
    assert only_first[2, 10, 1] > 200 and only_first[2, 34].sum() == 0
    with pytest.raises(ValueError, match="faces index out of range"):
        draw_wireframe(np.zeros((8, 8, 3), np.uint8), points, faces + 10)


def test_shaded_overlay_of_the_ict_head(model):
    camera = PerspectiveCamera.front((64, 64), 80.0, 160.0)
    out = shaded_overlay(None, model.neutral, model.triangles(("head",)), camera)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[32, 32].sum() > 150 and out[2, 2].sum() == 0  # face lit in the middle, corner empty
    with pytest.raises(ValueError, match="photo is"):
        shaded_overlay(np.zeros((10, 10, 3), np.uint8), model.neutral, model.triangles(("head",)), camera)


def test_png_round_trip_and_atomic_write(tmp_path):
    image = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 3).astype(np.uint8)
    path = write_png(tmp_path / "frame.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]
    with pytest.raises(FileNotFoundError):
        write_png(tmp_path / "missing" / "frame.png", image)


def test_video_round_trip(tmp_path):
    frames = [np.full((31, 45, 3), 30 * i, np.uint8) for i in range(6)]  # odd size: padded to even
    path = write_video(tmp_path / "clip.mp4", frames, fps=12)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(12)
    assert len(decoded) == 6 and decoded[0].shape == (32, 46, 3)
    means = [float(f[:31, :45].mean()) for f in decoded]
    assert means == pytest.approx([30 * i for i in range(6)], abs=3)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_failed_video_leaves_no_file(tmp_path):
    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        yield np.zeros((8, 8, 3), np.uint8)

    with pytest.raises(ValueError, match="frame size changed"):
        write_video(tmp_path / "bad.mp4", frames())
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [])
    (tmp_path / "keep.mp4").write_bytes(b"old")
    with pytest.raises(ValueError):
        write_video(tmp_path / "keep.mp4", frames())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]
    assert (tmp_path / "keep.mp4").read_bytes() == b"old"


def test_video_writer_streams_frames_and_publishes_on_close(tmp_path):
    from facecast.render.preview import VideoWriter

    path = tmp_path / "stream.mp4"
    with VideoWriter(path, fps=10, crf=23, preset="veryfast") as writer:
        for k in range(5):
            writer.write(np.full((24, 32, 3), 40 * k, np.uint8))
            assert not path.exists()  # only a temporary file until the end
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()  # not mkstemp's 0600


def test_video_writer_abort_leaves_nothing(tmp_path):
    from facecast.render.preview import VideoWriter

    with pytest.raises(RuntimeError, match="stop"):
        with VideoWriter(tmp_path / "stream.mp4") as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
