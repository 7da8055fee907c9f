"""Readers for landmark annotations and the normalised mean error (NME).

All points come back in the pixel convention of :mod:`facecast.recon.landmarks`:
x right, y down, the centre of pixel (0, 0) at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
