"""face-alignment's FAN: 68 iBUG points per face (``pip install facecast[fan]``; weights download on first use).

Pixel convention: that of :mod:`facecast.recon.landmarks.detector`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from facecast.recon.landmarks.detector import DetectedFace, Scheme, check_image, sort_faces

FAN_INSTALL_HINT = ("the FAN landmark backend needs the face-alignment package: "
                    "pip install 'facecast[fan]' (it downloads its weights on first use)")


@dataclass(frozen=True)
class FanConfig:
    """Settings of :class:`FanDetector`.

    device: torch device for FAN and its face detector (``"cpu"``, ``"cuda"``).
    face_detector: face-alignment's detector name (``"sfd"``, ``"blazeface"``, ``"dlib"``).
    flip_input: also run on the mirrored crop and average (slower, a little more accurate).
    min_detection_score: detector boxes below this are dropped.
    track_min_score: in ``track``, a face whose mean landmark heat-map score
    falls below this is re-detected instead of followed.
    """

    device: str = "cpu"
    face_detector: str = "sfd"
    flip_input: bool = False
    min_detection_score: float = 0.5
    track_min_score: float = 0.3


class FanDetector:
    """face-alignment's 2D FAN: 68 iBUG points per face (``scheme="ibug68"``).

    Construction only checks that face-alignment is importable (raising
    ``ImportError`` with the install hint otherwise); the networks load on the
    first ``detect``/``track``. Points are face-alignment's image coordinates,
    taken as module-convention pixels.
    """

    scheme: Scheme = "ibug68"

    def __init__(self, config: FanConfig | None = None) -> None:
        import importlib.util

        if importlib.util.find_spec("face_alignment") is None:
            raise ImportError(FAN_INSTALL_HINT)
        self.config = config or FanConfig()
        self._model = None

    def _load(self):
        if self._model is None:
            import face_alignment

            cfg = self.config
            self._model = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=cfg.device,
                flip_input=cfg.flip_input, face_detector=cfg.face_detector)
        return self._model

    def _run(self, image: np.ndarray, boxes: list[np.ndarray] | None) -> list[DetectedFace]:
        model = self._load()
        given = None if boxes is None else [np.append(b[:4], 1.0) for b in boxes]
        landmarks, scores, detected = model.get_landmarks_from_image(
            image, detected_faces=given, return_bboxes=True, return_landmark_score=True)
        faces = []
        for k, points in enumerate(landmarks or []):
            box = np.asarray(detected[k], dtype=np.float64)
            det_score = float(box[4]) if box.size > 4 else math.nan
            if boxes is None and det_score < self.config.min_detection_score:
                continue
            heat = float(np.mean(scores[k])) if scores is not None else math.nan
            faces.append(DetectedFace(box=box[:4].copy(), score=det_score if boxes is None else heat,
                                      points=np.asarray(points, dtype=np.float64)[:, :2],
                                      scheme="ibug68"))
        return sort_faces(faces)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """``(H, W, 3)`` uint8 RGB -> faces (68 points each), largest first; ``[]`` if none."""
        return self._run(check_image(image), None)

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[list[DetectedFace]]:
        """Yield each frame's faces; reuse the previous frame's landmark boxes and
        re-detect when a face is lost (mean landmark score < ``track_min_score``).

        In tracked frames ``score`` is the mean landmark heat-map score.
        """
        boxes: list[np.ndarray] = []
        for index, frame in enumerate(frames):
            frame = check_image(frame, f"frame {index}")
            faces = self._run(frame, boxes) if boxes else []
            if not faces or any(f.score < self.config.track_min_score for f in faces):
                faces = self._run(frame, None)
            boxes = [_box_around(f.points, frame.shape) for f in faces]
            yield faces

    def close(self) -> None:
        self._model = None


def _box_around(points: np.ndarray, shape: tuple[int, ...], margin: float = 0.1) -> np.ndarray:
    """``(4,)`` box of ``(N, 2)`` points grown by ``margin`` of its size, clipped to the image."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = (hi - lo) * margin
    lo = np.maximum(lo - pad, -0.5)
    hi = np.minimum(hi + pad, (shape[1] - 0.5, shape[0] - 0.5))
    return np.concatenate([lo, hi])
