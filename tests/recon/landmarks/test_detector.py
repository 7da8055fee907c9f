"""Landmark detectors on real faces (../shared/media), selection, errors, and the evaluation readers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facecast.recon.landmarks.detector import DetectedFace, LandmarkDetector, NoFaceError, check_image, select_faces
from facecast.recon.landmarks.evaluation import nme, read_aflw_mat, read_pts
from facecast.recon.landmarks.mediapipe_mesh import MediaPipeConfig, MediaPipeDetector

LFPW_IMAGES = ("image_0001", "image_0002", "image_0003", "image_0004")


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


@pytest.fixture(scope="module")
def media(shared_dir) -> Path:
    return shared_dir / "media"


@pytest.fixture(scope="module")
def detector():
    with MediaPipeDetector(MediaPipeConfig(max_num_faces=2)) as det:
        yield det


@pytest.fixture(scope="module")
def talk_frames(media) -> list[np.ndarray]:
    import av

    with av.open(str(media / "videos" / "talk1.mp4")) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 10:
                break
    return frames


def test_import_and_construction_do_no_work():
    code = ("import sys, facecast.recon.landmarks.mediapipe_mesh as L; d = L.MediaPipeDetector(); "
            "print('mediapipe' in sys.modules, d._mesh is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_mediapipe_is_a_landmark_detector():
    assert isinstance(MediaPipeDetector(), LandmarkDetector)


@pytest.mark.parametrize("name", LFPW_IMAGES)
def test_mediapipe_finds_478_points_near_annotation(detector, media, name):
    image = read_rgb(media / "lfpw68-train" / f"{name}.jpg")
    faces = detector.detect(image)
    assert len(faces) >= 1
    face = faces[0]
    assert face.scheme == "mediapipe478" and face.points.shape == (478, 2)
    assert 0.5 < face.score <= 1.0
    assert np.all(face.points >= face.box[:2] - 1e-9) and np.all(face.points <= face.box[2:] + 1e-9)
    truth = read_pts(media / "lfpw68-train" / f"{name}.pts")
    # measured 3.5-4.4% on these four images; 4.97% mean over all 200 LFPW images
    assert nme(face.ibug68(), truth) < 0.07


def test_no_face_raises_with_input_name(detector):
    rng = np.random.default_rng(0)
    for image in (np.full((240, 320, 3), 128, np.uint8), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)):
        faces = detector.detect(image)
        assert faces == []
        with pytest.raises(NoFaceError, match="gray.png") as info:
            select_faces(faces, source="gray.png")
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((20, 20, 3), np.float32), "uint8"),
    (np.zeros((20, 20), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((20, 20, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 20, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_images_raise_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        check_image(bad)
    with pytest.raises(ValueError, match=message):
        MediaPipeDetector().detect(bad)


def test_two_faces_largest_first(detector, media):
    import cv2

    big = read_rgb(media / "lfpw68-train" / "image_0002.jpg")  # 450 x 300
    small = cv2.resize(read_rgb(media / "lfpw68-train" / "image_0003.jpg"), None, fx=0.6, fy=0.6)
    canvas = np.zeros((big.shape[0], big.shape[1] + small.shape[1], 3), np.uint8)
    canvas[:, : big.shape[1]] = big
    canvas[: small.shape[0], big.shape[1]:] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[2] < big.shape[1] + 2 and faces[1].box[0] > big.shape[1] - 2  # big one on the left
    assert select_faces(faces)[0] is faces[0]
    assert select_faces(faces, face_index=1)[0] is faces[1]
    assert [f.area for f in select_faces(faces, face_index=None)] == [faces[0].area, faces[1].area]
    with pytest.raises(ValueError, match="only 2 face"):
        select_faces(faces, face_index=2, source="canvas")


def test_track_follows_video_and_redetects_after_loss(detector, talk_frames):
    gray = np.full_like(talk_frames[0], 128)
    sequence = talk_frames[:5] + [gray] + talk_frames[5:]
    tracked = list(detector.track(sequence))
    assert [len(faces) for faces in tracked] == [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    for faces, frame in zip(tracked[:5] + tracked[6:], talk_frames):
        face = faces[0]
        assert face.points.shape == (478, 2) and np.isnan(face.score)
        static = detector.detect(frame)[0]
        assert np.linalg.norm(face.points - static.points, axis=1).mean() < 4.0  # measured ~1.2 px
    steps = [np.linalg.norm(b[0].points - a[0].points, axis=1).mean() for a, b in zip(tracked[:4], tracked[1:5])]
    assert max(steps) < 10.0  # a talking head moves a few pixels per frame


def test_track_rejects_frames_of_changing_size(detector, talk_frames):
    with pytest.raises(ValueError, match="frame 1"):
        list(detector.track([talk_frames[0], talk_frames[1][:100]]))


def test_detected_face_checks_its_shapes():
    with pytest.raises(ValueError, match="478"):
        DetectedFace(box=np.zeros(4), score=1.0, points=np.zeros((68, 2)), scheme="mediapipe478")
    with pytest.raises(ValueError, match="unknown landmark scheme"):
        DetectedFace(box=np.zeros(4), score=1.0, points=np.zeros((68, 2)), scheme="dlib5")  # type: ignore[arg-type]


def test_fan_without_package_names_the_extra():
    try:
        import face_alignment  # noqa: F401
    except ImportError:
        from facecast.recon.landmarks.fan import FanDetector

        with pytest.raises(ImportError, match=r"facecast\[fan\]"):
            FanDetector()
    else:
        pytest.skip("face_alignment is installed")


def test_fan_detects_68_points(media):
    pytest.importorskip("face_alignment")
    from facecast.recon.landmarks.fan import FanDetector

    try:
        detector = FanDetector()
        faces = detector.detect(read_rgb(media / "lfpw68-train" / "image_0001.jpg"))
    except (OSError, RuntimeError) as err:  # weights cannot be downloaded here
        pytest.skip(f"FAN weights unavailable: {err}")
    assert faces and faces[0].scheme == "ibug68" and faces[0].points.shape == (68, 2)
    truth = read_pts(media / "lfpw68-train" / "image_0001.pts")
    assert nme(faces[0].ibug68(), truth) < 0.07


def test_read_pts_converts_to_zero_based(tmp_path):
    path = tmp_path / "a.pts"
    path.write_text("version: 1\nn_points:  2\n{\n1.0 1.0\n10.5 20.25\n}\n")
    np.testing.assert_allclose(read_pts(path), [[0.0, 0.0], [9.5, 19.25]])
    (tmp_path / "b.pts").write_text("version: 1\nn_points: 3\n{\n1 1\n}\n")
    with pytest.raises(ValueError, match="says 3 points"):
        read_pts(tmp_path / "b.pts")


def test_read_aflw_mat(media):
    ann = read_aflw_mat(media / "aflw2000" / "image00050.mat")
    assert ann.points.shape == (68, 2) and ann.depth.shape == (68,) and ann.pose.shape == (7,)
    assert np.all((ann.points > 0) & (ann.points < 450))
    assert abs(ann.yaw_degrees) < 90


def test_nme_known_value():
    truth = np.zeros((68, 2))
    truth[36], truth[45] = (0.0, 0.0), (100.0, 0.0)
    pred = truth + np.array([3.0, 4.0])  # every point 5 px off
    assert nme(pred, truth) == pytest.approx(0.05)
    assert nme(np.stack([pred, truth]), np.stack([truth, truth])).tolist() == pytest.approx([0.05, 0.0])
    with pytest.raises(ValueError, match="both be"):
        nme(pred[:10], truth)


def test_graph_errors_are_retried_on_a_fresh_graph():
    from facecast.recon.landmarks.mediapipe_mesh import run_graph

    class Broken:
        closed = False

        def process(self, image):
            raise RuntimeError("Packet isn't the sole owner of the holder.")

        def close(self):
            self.closed = True

    class Fresh:
        def process(self, image):
            return "landmarks"

    broken = Broken()
    graph, result = run_graph(broken, Fresh, np.zeros((4, 4, 3), np.uint8))
    assert result == "landmarks" and isinstance(graph, Fresh) and broken.closed
    with pytest.raises(RuntimeError, match="sole owner"):
        run_graph(Broken(), Broken, np.zeros((4, 4, 3), np.uint8))
