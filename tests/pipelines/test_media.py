"""Reading photos and videos: colour models, bit depths, EXIF, broken files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facecast.pipelines.media import MediaError, iter_frames, probe_video, read_image


@pytest.fixture
def rgb() -> np.ndarray:
    y, x = np.mgrid[0:40, 0:60]
    return np.stack([x * 4, y * 6, (x + y) * 2], -1).astype(np.uint8)


def test_rgb_png_round_trip(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)


def test_grayscale_and_16_bit(tmp_path, rgb):
    gray = rgb[..., 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (40, 60, 3) and np.array_equal(out[..., 1], gray)
    deep = (gray.astype(np.uint16) * 257)
    import cv2

    cv2.imwrite(str(tmp_path / "d.png"), deep)  # a real 16-bit grayscale PNG
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    out16 = read_image(tmp_path / "d.png")
    assert out16.dtype == np.uint8
    np.testing.assert_array_equal(out16[..., 0], gray)  # 16-bit scaled down, not clipped


def test_cmyk_jpeg_and_alpha(tmp_path, rgb):
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 12
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)


def test_exif_orientation_is_honoured(tmp_path, rgb):
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=98)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape == (60, 40, 3)
    expected = np.rot90(rgb, k=-1)
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 6


@pytest.mark.parametrize("content, message", [(b"", "corrupt|not a readable"), (b"hello", "not a readable"),
                                              (None, "no such file")])
def test_bad_images(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError, match=message):
        read_image(path)


def test_truncated_jpeg(tmp_path, rgb):
    Image.fromarray(np.tile(rgb, (8, 8, 1))).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")


def test_video_probe_and_frames(shared_dir):
    video = shared_dir / "media/videos/talk1.mp4"
    info = probe_video(video)
    assert info.fps > 10 and info.n_frames > 50 and info.width > 0
    frames = list(iter_frames(video, max_frames=3))
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].rgb.shape == (info.height, info.width, 3) and frames[1].time > frames[0].time


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"not a video at all", "not a readable video")])
def test_bad_videos(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message):
        probe_video(path)
    with pytest.raises(MediaError):
        list(iter_frames(path))
