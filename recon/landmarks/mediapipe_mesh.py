"""MediaPipe Face Mesh with iris refinement: 478 points per face (the default, offline backend).

Pixel convention: that of :mod:`facecast.recon.landmarks.detector`. MediaPipe's normalised
coordinates span the image edges, so ``x = x_norm * W - 0.5``. Neither import nor construction
loads a graph: the first ``detect`` / ``track`` does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from facecast.recon.landmarks.detector import DetectedFace, Scheme, check_image, sort_faces
from facecast.recon.landmarks.native_logs import quiet_native_logs


class FaceLimitWarning(UserWarning):
    """A detector pass returned ``max_num_faces`` faces: there may be more in the image."""


@dataclass(frozen=True)
class MediaPipeConfig:
    """Settings of :class:`MediaPipeDetector`.

    max_num_faces: most faces returned per image/frame (32: a group photo's every face). Keep it above 1 for
    "largest face" selection to mean anything (with 1, MediaPipe returns the face
    its detector scores highest); in ``track`` MediaPipe runs its detector on
    every frame while fewer faces than this are being followed (~2 ms a frame).
    min_detection_confidence: BlazeFace threshold for a new face.
    min_tracking_confidence: in ``track``, below this face-presence the face is
    re-detected instead of followed from the previous frame.
    score_faces: in ``detect``, also run BlazeFace (short range) to attach a
    detection score to each face (~5 ms); otherwise scores are ``nan``.
    """

    max_num_faces: int = 32
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


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area of two ``(4,)`` boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / max(smaller, 1e-9))


def _merge(faces: list[DetectedFace], more: list[DetectedFace]) -> list[DetectedFace]:
    """``faces`` and those of ``more`` that overlap none of them by more than a third (the same face)."""
    out = list(faces)
    for face in more:
        if all(_overlap(face.box, kept.box) < 1 / 3 for kept in out):
            out.append(face)
    return out


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


def run_graph(graph, reopen, image: np.ndarray):
    """Run a MediaPipe graph (``None``: open it with ``reopen``); retry a graph error on a fresh one.

    MediaPipe 0.10 graphs rarely fail with "Packet isn't the sole owner of the
    holder" and stay broken; a new graph recovers (a tracker then re-detects).
    While a graph opens and runs its first image, MediaPipe's C++ INFO/WARNING lines
    are dropped from stderr (:func:`~facecast.recon.landmarks.native_logs.quiet_native_logs`).
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


class SolutionGraph:
    """A MediaPipe solution graph, opened by :meth:`_open` on the first image, kept for the next ones
    and freed by :meth:`close`; a context manager."""

    def __init__(self) -> None:
        self._graph = None

    def _open(self):
        raise NotImplementedError

    def _process(self, image: np.ndarray):
        """The graph's result for ``image`` ``(H, W, 3)`` uint8 RGB (see :func:`run_graph`)."""
        self._graph, result = run_graph(self._graph, self._open, image)
        return result

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

    def _tiled(self, image: np.ndarray) -> tuple[list[DetectedFace], bool]:
        """Faces found in overlapping tiles of a half and of a quarter of the image's size (stride half a
        tile; tiles under 128 px are skipped), in the image's pixels; and whether a tile gave as many faces as
        a pass returns (``max_num_faces``)."""
        height, width = image.shape[:2]
        found: list[DetectedFace] = []
        capped = False
        for level in (2, 4):
            tile_h, tile_w = height // level, width // level
            if min(tile_h, tile_w) < 128:
                break
            steps = 2 * level - 1
            for top in np.linspace(0, height - tile_h, steps).astype(int):
                for left in np.linspace(0, width - tile_w, steps).astype(int):
                    tile = np.ascontiguousarray(image[top:top + tile_h, left:left + tile_w])
                    self._mesh, result = run_graph(self._mesh, lambda: self._open_mesh(static=True), tile)
                    faces = _mediapipe_faces(result, tile_w, tile_h)
                    capped |= len(faces) >= self.config.max_num_faces
                    for face in faces:
                        points = face.points + (left, top)
                        box = np.concatenate([points.min(axis=0), points.max(axis=0)])
                        found = _merge(found, [DetectedFace(box=box, score=face.score, points=points,
                                                            scheme=face.scheme)])
        return found, capped

    def _open_blazeface(self):
        from mediapipe.python.solutions import face_detection

        return face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=self.config.min_detection_confidence)

    def detect(self, image: np.ndarray, tiles: bool | None = None) -> list[DetectedFace]:
        """``(H, W, 3)`` uint8 RGB -> faces (478 points each), largest first; ``[]`` if none.

        MediaPipe's face detector looks at the image shrunk to 128 px and misses faces narrower than
        about a tenth of it; ``tiles`` adds passes over overlapping tiles of a half and a quarter of the
        image (each face found there kept unless it overlaps one found already; ~60 more graph runs).
        ``None``: only when the whole image gave no face (``True`` for group photos: every face).
        """
        image = check_image(image)
        height, width = image.shape[:2]
        self._mesh, result = run_graph(self._mesh, lambda: self._open_mesh(static=True), image)
        faces = _mediapipe_faces(result, width, height)
        capped = len(faces) >= self.config.max_num_faces
        if tiles or (tiles is None and not faces):
            tiled, capped = self._tiled(image)
            faces = _merge(faces, tiled)
        if capped:
            warnings.warn(f"a detector pass found the most faces it returns ({self.config.max_num_faces}); this "
                          f"image may hold more faces than the {len(faces)} found", FaceLimitWarning, stacklevel=2)
        if faces and self.config.score_faces:
            self._blazeface, scored = run_graph(self._blazeface, self._open_blazeface, image)
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
                mesh, result = run_graph(mesh, lambda: self._open_mesh(static=False), frame)
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

    def __enter__(self) -> MediaPipeDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
