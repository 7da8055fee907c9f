"""Face boxes and 2D landmarks from RGB images and video: one interface, two backends.

Pixel convention (every ``points`` and ``box`` in this module): OpenCV's
integer-centre convention. ``x`` grows to the right and ``y`` downwards, in
pixels, and the *centre* of pixel ``(row 0, column 0)`` is at ``(0.0, 0.0)``;
the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. This is what
``cv2.warpAffine``/``cv2.remap`` use, so points can be fed to them unchanged.
Conversions: iBUG ``.pts`` files are 1-based (subtract 1, see
:func:`facecast.recon.evaluation.read_pts`); MediaPipe's normalised
coordinates span the image edges, so ``x = x_norm * W - 0.5``.

Backends:

* :class:`MediaPipeDetector` (default, runs offline): MediaPipe Face Mesh with
  iris refinement, 478 points (``scheme="mediapipe478"``); 468-477 are the irises.
* :class:`FanDetector`: face-alignment's FAN, 68 iBUG points
  (``scheme="ibug68"``); needs ``pip install facecast[fan]`` and downloads its
  weights on first use.

Neither import nor construction loads a model: the first ``detect`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Literal, Protocol, runtime_checkable

import numpy as np

from .native_logs import quiet_native_logs

Scheme = Literal["mediapipe478", "ibug68"]
N_POINTS: dict[str, int] = {"mediapipe478": 478, "ibug68": 68}


class NoFaceError(ValueError):
    """No face was found in an image (the message names the input)."""


@dataclass(frozen=True)
class DetectedFace:
    """One face found in one image.

    box: ``(4,)`` float64 ``x0, y0, x1, y1`` pixels (module convention), the
    tight box of the landmarks for MediaPipe, the detector's box for FAN.
    score: detection confidence in ``[0, 1]``; ``nan`` where the backend gives
    none (MediaPipe in tracking mode).
    points: ``(N, 2)`` float64 pixels, N = 478 (``mediapipe478``) or 68 (``ibug68``).
    scheme: the landmark scheme naming the order of ``points``.
    """

    box: np.ndarray
    score: float
    points: np.ndarray
    scheme: Scheme

    def __post_init__(self) -> None:
        if self.scheme not in N_POINTS:
            raise ValueError(f"unknown landmark scheme {self.scheme!r}; known: {sorted(N_POINTS)}")
        n = N_POINTS[self.scheme]
        if self.points.shape != (n, 2):
            raise ValueError(f"{self.scheme} points must have shape ({n}, 2), got {self.points.shape}")
        if self.box.shape != (4,):
            raise ValueError(f"box must have shape (4,), got {self.box.shape}")

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))

    def ibug68(self) -> np.ndarray:
        """``(68, 2)`` points in iBUG 300-W order (MediaPipe mapped by its 68-point subset)."""
        if self.scheme == "ibug68":
            return self.points
        from .correspondence import MEDIAPIPE_TO_IBUG68

        return self.points[list(MEDIAPIPE_TO_IBUG68)]


@runtime_checkable
class LandmarkDetector(Protocol):
    """What every backend provides.

    ``detect`` treats each call as an independent photo. ``track`` runs over a
    frame sequence, follows faces from frame to frame and re-detects when it
    loses them; it yields one list per frame (empty where no face is found).
    Faces in each list are sorted by box area, largest first.
    """

    scheme: Scheme

    def detect(self, image: np.ndarray) -> list[DetectedFace]: ...

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[list[DetectedFace]]: ...

    def close(self) -> None: ...


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an ``(H, W, 3)`` uint8 RGB image and return it C-contiguous.

    Raises ``ValueError`` naming ``name`` for a wrong type, dtype, shape or an empty image.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0-255) RGB, got dtype {image.dtype}; "
                         f"convert with (image * 255).clip(0, 255).astype(np.uint8) if it is float in [0, 1]")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) RGB, got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    return np.ascontiguousarray(image)


def sort_faces(faces: list[DetectedFace]) -> list[DetectedFace]:
    """Faces by box area, largest first (stable for equal areas)."""
    return sorted(faces, key=lambda f: -f.area)


def select_faces(faces: list[DetectedFace], face_index: int | None = 0,
                 source: str = "image") -> list[DetectedFace]:
    """Pick faces from a detector's (area-sorted) list.

    face_index: ``0`` the largest face (default), ``k`` the k-th largest,
    ``None`` all faces, largest first.
    source: names the input in error messages (a file name, ``"frame 12"``).
    Raises :class:`NoFaceError` when ``faces`` is empty and ``ValueError`` when
    ``face_index`` is out of range.
    """
    if not faces:
        raise NoFaceError(f"no face found in {source}")
    ordered = sort_faces(faces)
    if face_index is None:
        return ordered
    if not -len(ordered) <= face_index < len(ordered):
        raise ValueError(f"face_index {face_index} asked for, but only {len(ordered)} "
                         f"face(s) found in {source}")
    return [ordered[face_index]]


# ---------------------------------------------------------------- MediaPipe --

@dataclass(frozen=True)
class MediaPipeConfig:
    """Settings of :class:`MediaPipeDetector`.

    max_num_faces: most faces returned per image/frame. Keep it above 1 for
    "largest face" selection to mean anything (with 1, MediaPipe returns the face
    its detector scores highest); in ``track`` MediaPipe runs its detector on
    every frame while fewer faces than this are being followed (~2 ms a frame).
    min_detection_confidence: BlazeFace threshold for a new face.
    min_tracking_confidence: in ``track``, below this face-presence the face is
    re-detected instead of followed from the previous frame.
    score_faces: in ``detect``, also run BlazeFace (short range) to attach a
    detection score to each face (~5 ms); otherwise scores are ``nan``.
    """

    max_num_faces: int = 4
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    score_faces: bool = True

    def __post_init__(self) -> None:
        if self.max_num_faces < 1:
            raise ValueError(f"max_num_faces must be >= 1, got {self.max_num_faces}")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")


def _mediapipe_faces(result, width: int, height: int) -> list[DetectedFace]:
    """Face Mesh result -> faces in pixels (module convention), unsorted, ``nan`` scores."""
    faces = []
    for landmarks in result.multi_face_landmarks or []:
        norm = np.array([(p.x, p.y) for p in landmarks.landmark], dtype=np.float64)
        points = norm * (width, height) - 0.5
        box = np.concatenate([points.min(axis=0), points.max(axis=0)])
        faces.append(DetectedFace(box=box, score=math.nan, points=points, scheme="mediapipe478"))
    return faces


def _attach_scores(faces: list[DetectedFace], detections, width: int, height: int) -> list[DetectedFace]:
    """Give each face the score of the BlazeFace box whose centre lies in its box (best one)."""
    centres = []
    for det in detections or []:
        rel = det.location_data.relative_bounding_box
        centres.append(((rel.xmin + rel.width / 2) * width - 0.5,
                        (rel.ymin + rel.height / 2) * height - 0.5, float(det.score[0])))
    scored = []
    for face in faces:
        x0, y0, x1, y1 = face.box
        inside = [s for cx, cy, s in centres if x0 <= cx <= x1 and y0 <= cy <= y1]
        score = max(inside) if inside else math.nan
        scored.append(DetectedFace(box=face.box, score=score, points=face.points, scheme=face.scheme))
    return scored


def _process(graph, reopen, image: np.ndarray):
    """Run a MediaPipe graph (``None``: open it with ``reopen``); retry a graph error on a fresh one.

    MediaPipe 0.10 graphs rarely fail with "Packet isn't the sole owner of the
    holder" and stay broken; a new graph recovers (a tracker then re-detects).
    While a graph opens and runs its first image, MediaPipe's C++ INFO/WARNING lines
    are dropped from stderr (:func:`~facecast.recon.native_logs.quiet_native_logs`).
    Returns ``(graph in use, result)``.
    """
    if graph is not None:
        try:
            return graph, graph.process(image)
        except RuntimeError:
            try:
                graph.close()
            except (RuntimeError, ValueError):
                pass
    with quiet_native_logs():
        graph = reopen()
        return graph, graph.process(image)


class MediaPipeDetector:
    """MediaPipe Face Mesh (``refine_landmarks=True``): 478 points per face.

    ``detect`` runs in static-image mode (detector on every call); ``track``
    opens a separate graph in tracking mode, where MediaPipe follows each face
    from the previous frame's landmarks and re-runs the detector when the
    face-presence score drops below ``min_tracking_confidence``.
    Use as a context manager or call :meth:`close` to free the graphs.
    """

    scheme: Scheme = "mediapipe478"

    def __init__(self, config: MediaPipeConfig | None = None) -> None:
        self.config = config or MediaPipeConfig()
        self._mesh = None
        self._blazeface = None

    def _open_mesh(self, static: bool):
        from mediapipe.python.solutions import face_mesh

        cfg = self.config
        return face_mesh.FaceMesh(static_image_mode=static, max_num_faces=cfg.max_num_faces,
                                  refine_landmarks=True,
                                  min_detection_confidence=cfg.min_detection_confidence,
                                  min_tracking_confidence=cfg.min_tracking_confidence)

    def _open_blazeface(self):
        from mediapipe.python.solutions import face_detection

        return face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=self.config.min_detection_confidence)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """``(H, W, 3)`` uint8 RGB -> faces (478 points each), largest first; ``[]`` if none."""
        image = check_image(image)
        height, width = image.shape[:2]
        self._mesh, result = _process(self._mesh, lambda: self._open_mesh(static=True), image)
        faces = _mediapipe_faces(result, width, height)
        if faces and self.config.score_faces:
            self._blazeface, scored = _process(self._blazeface, self._open_blazeface, image)
            faces = _attach_scores(faces, scored.detections, width, height)
        return sort_faces(faces)

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[list[DetectedFace]]:
        """Yield the faces of each ``(H, W, 3)`` uint8 RGB frame, following them between frames.

        Each call starts a fresh tracker, so two sequences never share state.
        Scores are ``nan`` (the tracker reports none). Frames must share one size.
        """
        mesh = size = None  # the graph opens on the first frame
        try:
            for index, frame in enumerate(frames):
                frame = check_image(frame, f"frame {index}")
                if size is None:
                    size = frame.shape
                elif frame.shape != size:
                    raise ValueError(f"frame {index} has shape {frame.shape}, earlier frames {size}")
                mesh, result = _process(mesh, lambda: self._open_mesh(static=False), frame)
                yield sort_faces(_mediapipe_faces(result, frame.shape[1], frame.shape[0]))
        finally:
            if mesh is not None:
                mesh.close()

    def close(self) -> None:
        """Free the MediaPipe graphs (a later ``detect`` reopens them)."""
        for graph in (self._mesh, self._blazeface):
            if graph is not None:
                graph.close()
        self._mesh = self._blazeface = None

    def __enter__(self) -> "MediaPipeDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------- FAN --

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
