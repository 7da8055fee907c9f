"""Small faces and group photos (issue #18): MediaPipe's detector misses faces under ~a tenth of the image's
width, and the mesh returned at most 4 faces; the tiled pass finds them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facecast.recon.landmarks.mediapipe_mesh import FaceLimitWarning, MediaPipeConfig, MediaPipeDetector


@pytest.fixture(scope="module")
def photos(shared_dir) -> list[np.ndarray]:
    paths = sorted((shared_dir / "media/lfpw68-train").glob("*.jpg"))[:9]
    return [np.asarray(Image.open(p).convert("RGB").resize((300, 300))) for p in paths]


def _grid(photos) -> tuple[np.ndarray, list[tuple[int, int]]]:
    canvas = np.full((1200, 1800, 3), 90, np.uint8)
    centres = []
    for k, photo in enumerate(photos):  # 9 portraits in a 3 x 3 grid: faces ~5-8 % of the width
        row, column = divmod(k, 3)
        canvas[row * 400 + 50:row * 400 + 350, column * 600 + 150:column * 600 + 450] = photo
        centres.append((column * 600 + 300, row * 400 + 200))
    return canvas, centres


def test_a_group_photo_gives_every_face(photos):
    canvas, centres = _grid(photos)
    with MediaPipeDetector() as detector:
        faces = detector.detect(canvas, tiles=True)
    found = [any(abs((f.box[0] + f.box[2]) / 2 - x) < 150 and abs((f.box[1] + f.box[3]) / 2 - y) < 150
                 for f in faces) for x, y in centres]
    assert all(found), found  # each portrait's face (some LFPW photos hold a second person too)


def test_a_small_face_is_found_and_reconstructed(photos, tmp_path):
    from facecast.pipelines.cli import app

    canvas = np.full((1200, 1800, 3), 90, np.uint8)
    canvas[500:670, 800:970] = np.asarray(Image.fromarray(photos[0]).resize((170, 170)))  # a face ~4 % wide
    path = tmp_path / "far.jpg"
    Image.fromarray(canvas).save(path)
    result = CliRunner().invoke(app, ["reconstruct", str(path), "-o", str(tmp_path / "far.glb"), "--mode", "fast",
                                      "--no-texture", "--no-preview"])
    assert result.exit_code == 0, result.output  # before: "no face found"


def test_a_detector_at_its_face_limit_says_there_may_be_more(photos):
    """Issue #18: ``--all-faces`` must return every face or say that it may have skipped some."""
    canvas, _ = _grid(photos)
    with MediaPipeDetector(MediaPipeConfig(max_num_faces=2)) as detector, \
            pytest.warns(FaceLimitWarning, match=r"most faces it returns \(2\); this image may hold more"):
        detector.detect(canvas, tiles=True)
    with MediaPipeDetector() as detector, warnings.catch_warnings():
        warnings.simplefilter("error", FaceLimitWarning)
        assert len(detector.detect(canvas, tiles=True)) >= 9


def test_all_faces_says_how_many_it_found(photos, tmp_path):
    from facecast.pipelines.cli import app

    path = tmp_path / "group.jpg"
    Image.fromarray(_grid(photos)[0]).save(path)
    result = CliRunner().invoke(app, ["reconstruct", str(path), "-o", str(tmp_path / "g.glb"), "--mode", "fast",
                                      "--no-texture", "--no-preview", "--all-faces"])
    assert result.exit_code == 0, result.output
    heads = sorted(p.name for p in tmp_path.glob("g_*.glb"))
    assert len(heads) >= 9 and f"{len(heads)} faces found and reconstructed" in result.stderr, result.output


def test_a_face_index_past_the_faces_found_is_one_line(tmp_path):
    from skimage import data

    from facecast.pipelines.cli import app

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    result = CliRunner().invoke(app, ["reconstruct", str(path), "-o", str(tmp_path / "a.glb"), "--face-index", "3"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output  # before: a traceback
    assert "face index 3 asked for, but only 1 face found in" in result.stderr and str(path) in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut.png"]
