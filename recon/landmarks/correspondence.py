"""Landmark schemes as points on the ICT mesh, and their differentiable evaluation.

A :class:`LandmarkMapping` places landmark ``k`` at
``sum_j barycentric[k, j] * vertices[vertex_ids[k, j]]`` (a point on one
triangle; a plain vertex has weights ``(1, 0, 0)``). Two schemes:

* ``ibug68``: the 68 Multi-PIE/iBUG points at ICT's own landmark vertices
  (``idx_to_landmark_verts``). 2D annotators draw the jaw (points 0-16) on the
  visible outline, so :class:`ContourTable` gives each jaw point a line of
  candidate vertices and :func:`select_contour` picks, per image, the one on
  the silhouette (the "dynamic contour" of 3DDFA / Deep3DFaceRecon).
* ``mediapipe478``: MediaPipe Face Mesh points, registered once from
  MediaPipe's canonical face model onto the ICT neutral (see
  :mod:`facecast.recon.calibrate.mediapipe_table`) and shipped as
  ``weights/mediapipe478_ict.npz``.

``MEDIAPIPE_TO_IBUG68`` picks the 68 MediaPipe points that best stand for the
iBUG points, to compare MediaPipe output with 68-point annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from facecast.recon.model.topology import REGION_STARTS, ICTData

#: MediaPipe index for each iBUG-68 point (0-based both). Starts from the subset
#: in common use and moves, as mirror-symmetric pairs, the points that were
#: systematically off on LFPW (cross-validated: chosen on even images, kept only
#: where the error on odd images fell by > 10%): jaw 0/16 162/389 -> 127/356 and
#: 3/13 58/288 -> 215/435, brow ends 17/26 71/301 -> 70/300 and 21/22
#: 107/336 -> 55/285, eye corners 36/45 33/263 -> 7/249 and 39/42
#: 133/362 -> 155/382, upper lip 51 0 -> 11, inner mouth corners 60/64
#: 78/308 -> 96/325. Mean NME on the held-out odd LFPW-68 images fell from 5.5% to 4.9%;
#: on AFLW2000 (not used to choose) it is unchanged, 12.0% vs 12.2% (benchmarks/landmarks.py).
MEDIAPIPE_TO_IBUG68: tuple[int, ...] = (
    127, 234, 93, 215, 172, 136, 149, 148, 152, 377, 378, 365, 397, 435, 323, 454, 356,  # jaw 0-16
    70, 63, 105, 66, 55, 285, 296, 334, 293, 300,  # brows 17-26
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose 27-35
    7, 160, 158, 155, 153, 144, 382, 385, 387, 249, 373, 380,  # eyes 36-47
    61, 39, 37, 11, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips 48-59
    96, 82, 13, 312, 325, 317, 14, 87,  # inner lips 60-67
)
#: The widely copied original subset, kept for comparison in the benchmark.
MEDIAPIPE_TO_IBUG68_COMMON: tuple[int, ...] = (
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301, 168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)

#: ``LandmarkMapping.surface`` codes.
SURFACE_SKIN, SURFACE_IRIS_CENTRE, SURFACE_IRIS_EDGE = 0, 1, 2
MEDIAPIPE_TABLE = "mediapipe478_ict.npz"
CALIBRATED_TABLE = "mediapipe478_ict_calibrated.npz"


@dataclass(frozen=True)
class ViewOffsets:
    """View-dependent landmark offsets: where a detector puts a point moves with the view.

    A detector trained on photos places, e.g., cheek and eyelid points a little
    differently as the head turns than a fixed surface point would move. With ``c``
    the (x, y) components of the unit direction from the head to the camera in the
    model's frame (about (sin yaw, sin pitch)), point k is displaced by
    ``base[k] + gain[k] @ view_features(c)`` cm in the model frame before posing
    (features: ``cx, cy, cx^2, cy^2, cx cy``, so the offsets can differ between
    turning towards and away from a point).

    base: ``(N, 3)`` cm. gain: ``(N, 3, F)`` cm per unit of each feature (F = 5).
    """

    base: np.ndarray
    gain: np.ndarray

    def __post_init__(self) -> None:
        n = self.base.shape[0]
        if self.base.shape != (n, 3) or self.gain.shape != (n, 3, N_VIEW_FEATURES):
            raise ValueError(f"base must be (N, 3) and gain (N, 3, {N_VIEW_FEATURES}), "
                             f"got {self.base.shape}, {self.gain.shape}")

    def camera_offsets(self, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """Offsets ``(B, N, 3)`` in the camera frame for poses ``rotation``, ``translation`` ``(B, 3)``."""
        from facecast.recon.model.geometry import axis_angle_to_matrix

        matrix = axis_angle_to_matrix(rotation)
        view = view_features(view_direction(matrix, translation))
        base = torch.as_tensor(self.base, dtype=rotation.dtype, device=rotation.device)
        gain = torch.as_tensor(self.gain, dtype=rotation.dtype, device=rotation.device)
        local = base[None] + torch.einsum("nij,bj->bni", gain, view)
        return local @ matrix.transpose(1, 2)


N_VIEW_FEATURES = 5


def view_features(view: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` view directions -> ``(B, 5)`` features ``cx, cy, cx^2, cy^2, cx cy``."""
    x, y = view.unbind(-1)
    return torch.stack([x, y, x * x, y * y, x * y], dim=-1)


def view_direction(matrix: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` x, y of the unit head-to-camera direction in the model frame (rotations ``(B, 3, 3)``)."""
    to_camera = -translation / translation.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return (matrix.transpose(1, 2) @ to_camera[..., None])[:, :2, 0]


@dataclass(frozen=True)
class LandmarkMapping:
    """Landmarks of one scheme as barycentric points on the ICT mesh.

    vertex_ids: ``(N, 3)`` int64 vertex indices of the triangle holding each point.
    barycentric: ``(N, 3)`` float64 weights, each row >= 0 and summing to 1.
    surface: ``(N,)`` int8, ``SURFACE_SKIN`` / ``SURFACE_IRIS_CENTRE`` /
    ``SURFACE_IRIS_EDGE`` (iris edges are approximate: the limbus of ICT's eyeball).
    view: optional :class:`ViewOffsets` applied by posed evaluations
    (:meth:`facecast.recon.landmarks.sparse.SparseLandmarks.evaluate`); :meth:`evaluate` gives
    the surface points.
    """

    scheme: str
    vertex_ids: np.ndarray
    barycentric: np.ndarray
    surface: np.ndarray
    view: ViewOffsets | None = None

    def __post_init__(self) -> None:
        n = self.vertex_ids.shape[0]
        if self.vertex_ids.shape != (n, 3) or self.barycentric.shape != (n, 3) or self.surface.shape != (n,):
            raise ValueError(f"vertex_ids and barycentric must be (N, 3) and surface (N,), got "
                             f"{self.vertex_ids.shape}, {self.barycentric.shape}, {self.surface.shape}")
        if self.view is not None and self.view.base.shape[0] != n:
            raise ValueError(f"view offsets have {self.view.base.shape[0]} rows for {n} landmarks")

    def __len__(self) -> int:
        return int(self.vertex_ids.shape[0])

    def evaluate(self, vertices: torch.Tensor) -> torch.Tensor:
        """``(B, V, 3)`` full-mesh vertices -> ``(B, N, 3)`` landmark points (differentiable)."""
        return barycentric_points(vertices, self.vertex_ids, self.barycentric)


def barycentric_points(vertices: torch.Tensor, vertex_ids: np.ndarray | torch.Tensor,
                       barycentric: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(B, V, 3)`` vertices, ``(N, 3)`` ids, ``(N, 3)`` weights -> ``(B, N, 3)`` points.

    Differentiable in ``vertices`` (and in ``barycentric`` when it is a tensor).
    """
    if not isinstance(vertices, torch.Tensor) or vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be a (B, V, 3) tensor, got "
                         f"{getattr(vertices, 'shape', type(vertices).__name__)}")
    ids = torch.as_tensor(vertex_ids, dtype=torch.long, device=vertices.device)
    if ids.numel() and int(ids.max()) >= vertices.shape[1]:
        raise ValueError(f"mapping needs vertex {int(ids.max())} but vertices has only {vertices.shape[1]} "
                         f"(pass the full mesh, not a subset)")
    weights = torch.as_tensor(barycentric, dtype=vertices.dtype, device=vertices.device)
    corners = vertices[:, ids.reshape(-1)].reshape(vertices.shape[0], *ids.shape, 3)
    return (corners * weights[None, :, :, None]).sum(dim=2)


def ibug68_mapping(data: ICTData) -> LandmarkMapping:
    """The 68 ICT landmark vertices (static jaw: the front-most candidates) as a mapping."""
    ids = np.repeat(np.asarray(data.landmarks68, dtype=np.int64)[:, None], 3, axis=1)
    bary = np.tile(np.array([1.0, 0.0, 0.0]), (68, 1))
    return LandmarkMapping("ibug68", ids, bary, np.zeros(68, dtype=np.int8))


# ------------------------------------------------------------ jaw contour --

@dataclass(frozen=True)
class ContourTable:
    """Candidate vertices for the 17 iBUG jaw points.

    candidates: ``(17, C)`` int64 vertex ids; row k runs front to back along a
    horizontal band of the neutral mesh through ICT's landmark vertex (see
    :func:`jaw_contour`); rows are padded by repeating their last id.
    landmark_column: ``(17,)`` int64, where ICT's landmark vertex sits in its row.
    side: ``(17,)`` int8: ``-1`` take the candidate with the smallest image x
    (the subject's right jaw, iBUG 0-7, seen on the image left), ``+1`` the
    largest (iBUG 9-16), ``0`` keep the landmark (the chin, iBUG 8).
    """

    candidates: np.ndarray
    landmark_column: np.ndarray
    side: np.ndarray


def jaw_contour(data: ICTData, band: float = 0.5, step_degrees: float = 4.0,
                forward_degrees: float = 40.0, max_degrees: float = 100.0) -> ContourTable:
    """Build :class:`ContourTable` from the ICT neutral.

    Angles are measured around a vertical axis through the skull (x = 0, z = the
    middle of the head's depth), 0 degrees straight ahead. Jaw point k at height
    y_k and angle a_k gets, for each ``step_degrees`` from ``a_k -
    forward_degrees`` (not below 0) to ``max_degrees`` (about the ear's front),
    the face-region vertex on its side with ``|y - y_k| < band`` cm nearest to
    height y_k, plus the landmark itself. A head turned away moves the outline
    in front of the landmark, a head turned toward the camera behind it.
    """
    neutral = data.neutral.astype(np.float64)
    face_ids = np.arange(REGION_STARTS["head_neck"])
    skin_z = neutral[: REGION_STARTS["mouth_socket"], 2]
    axis_z = 0.5 * (float(skin_z.min()) + float(skin_z.max()))
    rows, columns, sides = [], [], []
    for k, vid in enumerate(np.asarray(data.landmarks68[:17])):
        side = -1 if k < 8 else (1 if k > 8 else 0)
        row, column = [int(vid)], 0
        if side:
            row, column = _band_path(neutral, face_ids, int(vid), side, axis_z, band, step_degrees,
                                     forward_degrees, max_degrees)
        rows.append(row)
        columns.append(column)
        sides.append(side)
    width = max(len(r) for r in rows)
    table = np.array([r + [r[-1]] * (width - len(r)) for r in rows], dtype=np.int64)
    return ContourTable(candidates=table, landmark_column=np.array(columns, dtype=np.int64),
                        side=np.array(sides, dtype=np.int8))


def _band_path(points: np.ndarray, ids: np.ndarray, start: int, side: int, axis_z: float, band: float,
               step_degrees: float, forward_degrees: float, max_degrees: float) -> tuple[list[int], int]:
    """Vertices of ``ids`` along a horizontal band through ``start``, one per angle step,
    sorted front to back; returns them and the position of ``start``."""
    y0 = points[start, 1]
    near = ids[(np.abs(points[ids, 1] - y0) < band) & (side * points[ids, 0] > 0)]
    angle = np.degrees(np.arctan2(side * points[near, 0], points[near, 2] - axis_z))
    own = float(np.degrees(np.arctan2(side * points[start, 0], points[start, 2] - axis_z)))
    path = [(own, start)]
    for lo in np.arange(max(own - forward_degrees, 0.0), max_degrees, step_degrees):
        in_bin = near[(angle >= lo) & (angle < lo + step_degrees) & (np.abs(angle - own) > step_degrees / 2)]
        if in_bin.size:
            best = int(in_bin[np.argmin(np.abs(points[in_bin, 1] - y0))])
            path.append((float(angle[near == best][0]), best))
    ordered = [vid for _, vid in sorted(path)]
    return ordered, ordered.index(start)


def select_contour(image_points: torch.Tensor, table: ContourTable) -> torch.Tensor:
    """Per image, the jaw candidate on the silhouette.

    image_points: ``(B, V, D)`` D >= 1, all vertices in image orientation:
    ``[..., 0]`` grows to the image right. Pass posed camera-frame vertices for
    an orthographic/weak-perspective camera looking along -z or +z, or projected
    pixel coordinates for a perspective one.
    Returns ``(B, 17)`` int64 vertex ids: for the subject's right jaw the
    candidate with the smallest image x, for the left the largest, the chin fixed.
    """
    if image_points.ndim != 3:
        raise ValueError(f"image_points must be (B, V, D), got {tuple(image_points.shape)}")
    cand = torch.as_tensor(table.candidates, device=image_points.device)
    side = torch.as_tensor(table.side, device=image_points.device, dtype=image_points.dtype)
    x = image_points[:, cand.reshape(-1), 0].reshape(image_points.shape[0], *cand.shape)
    key = torch.where(side[None, :, None] == 0, torch.zeros_like(x), -side[None, :, None] * x)
    pick = key.argmin(dim=-1)  # side 0: all keys equal -> first candidate
    return torch.gather(cand.expand(image_points.shape[0], -1, -1), 2, pick[..., None]).squeeze(-1)


def ibug68_points(vertices: torch.Tensor, mapping: LandmarkMapping,
                  contour: ContourTable | None = None,
                  image_points: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, V, 3)`` vertices -> ``(B, 68, 3)`` iBUG landmarks.

    With ``contour`` and ``image_points`` (see :func:`select_contour`) the jaw
    points 0-16 are the silhouette candidates of each image; otherwise ICT's
    fixed landmark vertices. Differentiable in ``vertices`` (the choice is not).
    """
    points = mapping.evaluate(vertices)
    if contour is None:
        return points
    if image_points is None:
        raise ValueError("image_points are needed to pick the jaw contour (pass posed vertices or projections)")
    jaw_ids = select_contour(image_points, contour)
    jaw = torch.gather(vertices, 1, jaw_ids[..., None].expand(-1, -1, 3))
    return torch.cat([jaw, points[:, 17:]], dim=1)


# ------------------------------------------------------------- MediaPipe --

@dataclass(frozen=True)
class MediaPipeTable:
    """The shipped MediaPipe-478 correspondence and what it was built from.

    mapping: the 478 points on the ICT mesh.
    registered: ``(468, 3)`` float64 cm, the canonical face model after the
    rigid + non-rigid registration onto the ICT neutral (the table projects
    these onto the surface).
    canonical_order: ``(468,)`` int64, the row of landmark i in the canonical OBJ file.
    residual_mm: ``(468,)`` float64 distance from each registered point to the ICT surface.
    """

    mapping: LandmarkMapping
    registered: np.ndarray
    canonical_order: np.ndarray
    residual_mm: np.ndarray


def default_table_path() -> Path:
    """Path of the shipped ``weights/mediapipe478_ict.npz``."""
    return Path(str(resources.files("facecast.weights").joinpath(MEDIAPIPE_TABLE)))


def calibrated_table_path() -> Path:
    """Path of ``weights/mediapipe478_ict_calibrated.npz`` (:mod:`facecast.recon.calibrate.calibrated_table`)."""
    return Path(str(resources.files("facecast.weights").joinpath(CALIBRATED_TABLE)))


def _open_table(path: Path, rebuild: str):
    """``np.load`` of a shipped table, or a ``FileNotFoundError`` that says how to rebuild it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; rebuild it with python -m {rebuild}")
    return np.load(path, allow_pickle=False)


def _table_mapping(npz, view: ViewOffsets | None = None) -> LandmarkMapping:
    return LandmarkMapping("mediapipe478", npz["vertex_ids"].astype(np.int64),
                           npz["barycentric"].astype(np.float64), npz["surface"].astype(np.int8), view)


def load_mediapipe_table(path: str | Path | None = None) -> MediaPipeTable:
    """Read the MediaPipe-478 table (default: the shipped one)."""
    path = Path(path) if path is not None else default_table_path()
    with _open_table(path, "facecast.recon.calibrate.mediapipe_table --assets <assets dir>") as npz:
        return MediaPipeTable(mapping=_table_mapping(npz), registered=npz["registered"].astype(np.float64),
                              canonical_order=npz["canonical_order"].astype(np.int64),
                              residual_mm=npz["residual_mm"].astype(np.float64))


def load_calibrated_mapping(path: str | Path | None = None) -> LandmarkMapping:
    """The calibrated MediaPipe-478 mapping with its :class:`ViewOffsets` (default: the shipped table)."""
    path = Path(path) if path is not None else calibrated_table_path()
    with _open_table(path, "facecast.recon.calibrate.calibrated_table") as npz:
        view = ViewOffsets(npz["view_base"].astype(np.float64), npz["view_gain"].astype(np.float64))
        return _table_mapping(npz, view)


def mediapipe478_mapping(calibrated: bool = True, view_offsets: bool = False) -> LandmarkMapping:
    """The shipped MediaPipe-478 :class:`LandmarkMapping`.

    calibrated: the points chosen on the mesh against MediaPipe's detections on renders
    (:mod:`facecast.recon.calibrate.calibrated_table`); ``False``: the registered table
    (:mod:`facecast.recon.calibrate.mediapipe_table`). view_offsets: also apply the
    calibrated table's view-dependent offsets. Off by default: they lower the error on
    renders (3.2 vs 4.1 % point cost) but raise 68-point NME on real LFPW photos
    (4.07 vs 3.85 %), so they learn the renderer more than the faces.
    """
    if not calibrated:
        if view_offsets:
            raise ValueError("view offsets exist only for the calibrated MediaPipe table")
        return load_mediapipe_table().mapping
    mapping = load_calibrated_mapping()
    return mapping if view_offsets else replace(mapping, view=None)
