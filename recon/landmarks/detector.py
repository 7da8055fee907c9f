"""Face boxes and 2D landmarks from RGB images and video: the interface every backend follows.

Pixel convention (every ``points`` and ``box`` in this module): OpenCV's
integer-centre convention. ``x`` grows to the right and ``y`` downwards, in
pixels, and the *centre* of pixel ``(row 0, column 0)`` is at ``(0.0, 0.0)``;
the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. This is what
``cv2.warpAffine``/``cv2.remap`` use, so points can be fed to them unchanged.
Conversions: iBUG ``.pts`` files are 1-based (subtract 1, see
:func:`facecast.recon.landmarks.evaluation.read_pts`); MediaPipe's normalised
coordinates span the image edges, so ``x = x_norm * W - 0.5``.

Backends:

* :class:`~facecast.recon.landmarks.mediapipe_mesh.MediaPipeDetector` (default, runs offline): MediaPipe Face Mesh with
  iris refinement, 478 points (``scheme="mediapipe478"``); 468-477 are the irises.
* :class:`~facecast.recon.landmarks.fan.FanDetector`: face-alignment's FAN, 68 iBUG points
  (``scheme="ibug68"``); needs ``pip install facecast[fan]`` and downloads its
  weights on first use.

Neither import nor construction loads a model: the first ``detect`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Scheme = Literal["mediapipe478", "ibug68"]
N_POINTS: dict[str, int] = {"mediapipe478": 478, "ibug68": 68}


class NoFaceError(ValueError):
    """No face was found in an image (the message names the input)."""


class FaceIndexError(ValueError):
    """Fewer faces were found than the face index asked for (the message names the input and the count)."""


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
        from facecast.recon.landmarks.correspondence import MEDIAPIPE_TO_IBUG68

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
    Raises :class:`NoFaceError` when ``faces`` is empty and :class:`FaceIndexError` when
    ``face_index`` is out of range.
    """
    if not faces:
        raise NoFaceError(f"no face found in {source}")
    ordered = sort_faces(faces)
    if face_index is None:
        return ordered
    if not -len(ordered) <= face_index < len(ordered):
        raise FaceIndexError(f"face index {face_index} asked for, but only {len(ordered)} face"
                             f"{'s' if len(ordered) > 1 else ''} found in {source} (0 = the largest, up to "
                             f"{len(ordered) - 1})")
    return [ordered[face_index]]


def faces_from_points(points: np.ndarray, score: float = float("nan")) -> list[DetectedFace]:
    """MediaPipe-478 :class:`DetectedFace` s for points ``(B, 478, 2)`` (detector pixels), each boxed
    tightly around its points."""
    points = np.asarray(points, dtype=np.float64)
    n = N_POINTS["mediapipe478"]
    if points.ndim != 3 or points.shape[1:] != (n, 2):
        raise ValueError(f"points must have shape (B, {n}, 2), got {points.shape}")
    return [DetectedFace(np.concatenate([p.min(0), p.max(0)]), score, p, "mediapipe478") for p in points]
