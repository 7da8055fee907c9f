"""Readers for landmark annotations and the normalised mean error (NME).

All points come back in the pixel convention of :mod:`facecast.recon.landmarks.detector`:
x right, y down, the centre of pixel (0, 0) at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from facecast.recon.landmarks.detector import DetectedFace

#: 0-based iBUG-68 indices of the outer eye corners (points 37 and 46 in 1-based numbering).
OUTER_EYE_CORNERS = (36, 45)


def read_pts(path: str | Path) -> np.ndarray:
    """Read an iBUG ``.pts`` file -> ``(N, 2)`` float64 pixels, 0-based (the file's 1-based minus 1).

    Format: ``version: 1``, ``n_points: N``, ``{``, N lines ``x y``, ``}``.
    """
    path = Path(path)
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    try:
        n = int(next(line for line in lines if line.startswith("n_points")).split(":")[1])
        start = lines.index("{") + 1
        end = lines.index("}", start)
    except (StopIteration, ValueError, IndexError) as err:
        raise ValueError(f"{path} is not an iBUG .pts file (needs n_points, '{{' and '}}')") from err
    points = np.array([[float(v) for v in line.split()[:2]] for line in lines[start:end]])
    if points.shape != (n, 2):
        raise ValueError(f"{path}: header says {n} points, found {len(points)}")
    return points - 1.0


@dataclass(frozen=True)
class AflwAnnotation:
    """One AFLW2000-3D ``.mat`` file.

    points: ``(68, 2)`` float64 pixels (0-based; the file's Matlab 1-based ``pt3d_68`` minus 1).
    depth: ``(68,)`` float64, the third row of ``pt3d_68`` (pixels, larger = nearer the camera).
    pose: ``(7,)`` float64 ``Pose_Para``: pitch, yaw, roll (radians), tx, ty, tz, scale.
    """

    points: np.ndarray
    depth: np.ndarray
    pose: np.ndarray

    @property
    def yaw_degrees(self) -> float:
        return float(np.degrees(self.pose[1]))


def read_aflw_mat(path: str | Path) -> AflwAnnotation:
    """Read an AFLW2000-3D annotation (``pt3d_68`` (3, 68) and ``Pose_Para`` (1, 7))."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    if "pt3d_68" not in mat or mat["pt3d_68"].shape != (3, 68):
        raise ValueError(f"{path} has no (3, 68) pt3d_68 array; is it an AFLW2000-3D .mat file?")
    pt3d = mat["pt3d_68"].astype(np.float64)
    pose = mat["Pose_Para"].astype(np.float64).reshape(-1) if "Pose_Para" in mat else np.full(7, np.nan)
    return AflwAnnotation(points=pt3d[:2].T - 1.0, depth=pt3d[2].copy(), pose=pose)


def nme(predicted: np.ndarray, target: np.ndarray,
        normaliser: tuple[int, int] = OUTER_EYE_CORNERS) -> np.ndarray:
    """Normalised mean error per image.

    predicted, target: ``(..., 68, 2)`` pixels, same convention.
    normaliser: two target point indices whose distance normalises the error
    (default: outer eye corners, the 300-W "inter-ocular" NME).
    Returns ``(...)``: mean over points of ``|predicted - target|``, divided by
    the normalising distance (a fraction: 0.05 means 5%).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape or predicted.ndim < 2 or predicted.shape[-1] != 2:
        raise ValueError(f"predicted and target must both be (..., N, 2), got {predicted.shape} and {target.shape}")
    scale = np.linalg.norm(target[..., normaliser[0], :] - target[..., normaliser[1], :], axis=-1)
    if np.any(scale <= 0):
        raise ValueError("normalising distance is zero for some target")
    return np.linalg.norm(predicted - target, axis=-1).mean(axis=-1) / scale


def point_errors(predicted: np.ndarray, target: np.ndarray,
                 normaliser: tuple[int, int] = OUTER_EYE_CORNERS) -> np.ndarray:
    """``(..., N)`` per-point errors ``|predicted - target|`` / normalising distance (see :func:`nme`)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape:
        raise ValueError(f"shapes differ: {predicted.shape} and {target.shape}")
    scale = np.linalg.norm(target[..., normaliser[0], :] - target[..., normaliser[1], :], axis=-1)
    return np.linalg.norm(predicted - target, axis=-1) / scale[..., None]


# ------------------------------------------------------------ benchmark sets --

@dataclass(frozen=True)
class Sample:
    """One annotated image: its path and ``(68, 2)`` points (module pixel convention)."""

    image: Path
    points: np.ndarray


def lfpw_samples(media: str | Path) -> list[Sample]:
    """The LFPW-68 images of ``media/lfpw68-train`` with their ``.pts`` annotations, sorted by name."""
    folder = Path(media) / "lfpw68-train"
    return [Sample(p, read_pts(p.with_suffix(".pts"))) for p in sorted(folder.glob("*.jpg"))]


def aflw_samples(media: str | Path) -> list[Sample]:
    """The AFLW2000-3D images of ``media/aflw2000`` with their ``pt3d_68`` x/y, sorted by name."""
    folder = Path(media) / "aflw2000"
    return [Sample(p, read_aflw_mat(p.with_suffix(".mat")).points) for p in sorted(folder.glob("*.jpg"))]


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 ``(H, W, 3)``; ``ValueError`` if it cannot be read."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def bounding_box(points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` points -> ``(4,)`` x0, y0, x1, y1."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(4,)`` x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_face(faces: list[DetectedFace], points: np.ndarray, min_iou: float = 0.3) -> DetectedFace | None:
    """The face whose 68-point box overlaps the annotation's ``(68, 2)`` box most; ``None`` below ``min_iou``."""
    truth = bounding_box(points)
    scored = [(iou(truth, bounding_box(f.ibug68())), f) for f in faces]
    best = max(scored, key=lambda s: s[0], default=(0.0, None))
    return best[1] if best[0] >= min_iou else None


@dataclass
class SampleFit:
    """One benchmark image after detect + fit.

    sample: the image and its annotation. detected: the matched face (``None`` =
    failure: no detected face overlaps the annotation). result: the
    :class:`~facecast.recon.photo.PhotoResult` (``None`` on failure).
    seconds: wall time of detect + fit.
    """

    sample: Sample
    detected: DetectedFace | None
    result: object | None
    seconds: float


def reconstruct_samples(reconstructor, samples: list[Sample], min_iou: float = 0.3) -> list[SampleFit]:
    """Detect and fit every sample with a :class:`~facecast.recon.photo.PhotoReconstructor`.

    Each image is searched for all faces the detector returns; the one overlapping
    the annotation (:func:`match_face`) is fitted, so a benchmark scores the face
    its annotation refers to even when it is not the largest.
    """
    import time

    fits = []
    for sample in samples:
        image = read_rgb(sample.image)
        start = time.perf_counter()
        face = match_face(reconstructor.detector.detect(image), sample.points, min_iou)
        result = reconstructor.fit([face], [image.shape[:2]], [image])[0] if face is not None else None
        fits.append(SampleFit(sample, face, result, time.perf_counter() - start))
    return fits
