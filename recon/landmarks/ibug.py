"""iBUG-68 landmarks as points on the ICT mesh, chosen to match 2D annotations.

A :class:`IbugTable` places each iBUG point at a barycentric point of one ICT
triangle (``vertex_ids``, ``barycentric``). 2D annotators draw the jaw (points
0-16) on the visible outline, so jaw point k may move towards the silhouette:
``(1 - w_k) * static_k + w_k * contour_k`` with ``contour_k`` the silhouette
candidate of :func:`~facecast.recon.landmarks.correspondence.select_contour` (one per
image, from the projected mesh). How far depends on the view:
``w_k = clip(contour_weight[k] + contour_gain[k] * s_k * v_x, 0, 1)``, with
``v_x`` the x component of the unit head-to-camera direction in the model frame
(:func:`view_side`, about sin(yaw)) and ``s_k`` = -1 / +1 for the subject's
right / left jaw (0 for the chin), so ``s_k * v_x > 0`` on the side turned
towards the camera, where the outline is the jaw's back edge rather than the
cheek's silhouette. The shipped table
``weights/ibug68_ict.npz`` was chosen on fitted meshes of the even LFPW-68 images
(see :mod:`facecast.recon.calibrate.ibug_table`, which regenerates it).

:class:`ModelLandmarks` evaluates a table on a sparse model (the table's vertices
and the contour candidates only) and projects the points into the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from facecast.recon.landmarks.correspondence import (
    MEDIAPIPE_TO_IBUG68,
    ContourTable,
    barycentric_points,
    jaw_contour,
    mediapipe478_mapping,
)
from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs, project_points
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import ICTData

IBUG_TABLE = "ibug68_ict.npz"
#: ``(17,)`` -1 for the subject's right jaw (iBUG 0-7, model -x), +1 for the left (9-16), 0 the chin.
JAW_SIDE = np.sign(np.arange(17) - 8).astype(np.float64)


@dataclass(frozen=True)
class IbugTable:
    """The 68 iBUG points on the ICT mesh.

    vertex_ids: ``(68, 3)`` int64 full-mesh vertex ids of each point's triangle.
    barycentric: ``(68, 3)`` float64 weights (>= 0, rows sum to 1).
    contour_weight: ``(17,)`` float64 in [0, 1], how far each jaw point moves to the
    silhouette candidate in a frontal view (0 = fixed on the mesh, 1 = the dynamic contour).
    contour_gain: ``(17,)`` float64, the change of that weight per unit of ``s_k * v_x``
    (see the module docstring); ``None`` = zeros (the weight does not depend on the view).
    """

    vertex_ids: np.ndarray
    barycentric: np.ndarray
    contour_weight: np.ndarray
    contour_gain: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.vertex_ids.shape != (68, 3) or self.barycentric.shape != (68, 3):
            raise ValueError(f"vertex_ids and barycentric must be (68, 3), got {self.vertex_ids.shape}, "
                             f"{self.barycentric.shape}")
        if self.contour_weight.shape != (17,) or not ((self.contour_weight >= 0) & (self.contour_weight <= 1)).all():
            raise ValueError(f"contour_weight must be (17,) in [0, 1], got {self.contour_weight}")
        if self.contour_gain is None:
            object.__setattr__(self, "contour_gain", np.zeros(17))
        elif self.contour_gain.shape != (17,):
            raise ValueError(f"contour_gain must be (17,), got {self.contour_gain.shape}")

    @property
    def uses_contour(self) -> bool:
        """Whether any jaw point ever moves towards the silhouette."""
        return bool((self.contour_weight > 0).any() or (self.contour_gain != 0).any())

    def jaw_weights(self, side_view: torch.Tensor) -> torch.Tensor:
        """``(B,)`` :func:`view_side` -> ``(B, 17)`` blend weights towards the silhouette, in [0, 1]."""
        base = torch.as_tensor(self.contour_weight, dtype=side_view.dtype, device=side_view.device)
        gain = torch.as_tensor(self.contour_gain * JAW_SIDE, dtype=side_view.dtype, device=side_view.device)
        return (base + gain * side_view[:, None]).clamp(0.0, 1.0)


def default_table_path() -> Path:
    """Path of the shipped ``weights/ibug68_ict.npz``."""
    return Path(str(resources.files("facecast.weights").joinpath(IBUG_TABLE)))


def load_ibug_table(path: str | Path | None = None) -> IbugTable:
    """Read an :class:`IbugTable` (default: the shipped one)."""
    path = Path(path) if path is not None else default_table_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; rebuild it with python -m facecast.recon.calibrate.ibug_table")
    with np.load(path, allow_pickle=False) as npz:
        gain = npz["contour_gain"].astype(np.float64) if "contour_gain" in npz.files else None
        return IbugTable(npz["vertex_ids"].astype(np.int64), npz["barycentric"].astype(np.float64),
                         npz["contour_weight"].astype(np.float64), gain)


def save_ibug_table(table: IbugTable, path: str | Path, **metadata: np.ndarray) -> None:
    """Write ``table`` (and optional extra arrays, e.g. how it was chosen) as an npz."""
    np.savez_compressed(path, vertex_ids=table.vertex_ids, barycentric=table.barycentric,
                        contour_weight=table.contour_weight, contour_gain=table.contour_gain, **metadata)


def mediapipe68_table() -> IbugTable:
    """The ``MEDIAPIPE_TO_IBUG68`` points of the MediaPipe mapping, jaw fixed."""
    mapping = mediapipe478_mapping()
    rows = list(MEDIAPIPE_TO_IBUG68)
    return IbugTable(mapping.vertex_ids[rows], mapping.barycentric[rows], np.zeros(17))


def ict68_table(data: ICTData) -> IbugTable:
    """ICT's own 68 landmark vertices with the jaw fully on the dynamic contour."""
    ids = np.repeat(np.asarray(data.landmarks68, dtype=np.int64)[:, None], 3, axis=1)
    bary = np.tile(np.array([1.0, 0.0, 0.0]), (68, 1))
    return IbugTable(ids, bary, np.ones(17))


class ModelLandmarks:
    """Projected iBUG-68 points of fitted faces for one :class:`IbugTable`.

    Call with :class:`FaceCoeffs` (B faces) -> ``(B, 68, 2)`` float64 pixels in the
    detector convention (pixel (0, 0) centred at (0, 0)).
    """

    def __init__(self, model: MorphableModel, table: IbugTable, contour: ContourTable | None = None) -> None:
        data = model.data
        contour = contour if contour is not None else jaw_contour(data)
        ids, inverse = np.unique(np.concatenate([table.vertex_ids.ravel(), contour.candidates.ravel()]),
                                 return_inverse=True)
        n_static = table.vertex_ids.size
        self.table = table
        self.model = MorphableModel(data, ids, dtype=model.neutral.dtype).to(model.neutral.device)
        self.local = inverse[:n_static].reshape(68, 3)
        self.contour = ContourTable(inverse[n_static:].reshape(contour.candidates.shape),
                                    contour.landmark_column, contour.side)

    def points(self, coeffs: FaceCoeffs) -> torch.Tensor:
        """``(B, 68, 3)`` posed landmark points (cm) of ``coeffs``."""
        vertices = self.model(coeffs.identity, coeffs.expression, coeffs.rotation, coeffs.translation).vertices
        points = barycentric_points(vertices, self.local, self.table.barycentric)
        if not self.table.uses_contour:
            return points
        jaw = silhouette_points(vertices, self.contour, coeffs)
        w = self.table.jaw_weights(view_side(coeffs).to(points.dtype))[..., None]
        return torch.cat([(1 - w) * points[:, :17] + w * jaw, points[:, 17:]], dim=1)

    def __call__(self, coeffs: FaceCoeffs) -> np.ndarray:
        with torch.no_grad():
            pixels = project_points(self.points(coeffs), coeffs.focal, coeffs.principal)
        return pixels.cpu().numpy().astype(np.float64) - PIXEL_OFFSET


def view_side(coeffs: FaceCoeffs) -> torch.Tensor:
    """``(B,)`` x of the unit head-to-camera direction in the model frame (+ = camera on the model's +x side).

    About sin(yaw) of the view; the head's origin stands for its position.
    """
    from facecast.recon.model.geometry import axis_angle_to_matrix

    matrix = axis_angle_to_matrix(coeffs.rotation)
    to_camera = -coeffs.translation / coeffs.translation.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return torch.einsum("bji,bj->bi", matrix, to_camera)[:, 0]


def silhouette_points(vertices: torch.Tensor, contour: ContourTable, coeffs: FaceCoeffs) -> torch.Tensor:
    """``(B, 17, 3)`` the jaw candidates on each image's silhouette.

    vertices: ``(B, M, 3)`` posed vertices that ``contour.candidates`` index.
    """
    from facecast.recon.landmarks.correspondence import select_contour

    cand = np.unique(contour.candidates)
    pixels = vertices.new_zeros(*vertices.shape[:2], 2)
    pixels[:, cand] = project_points(vertices[:, cand], coeffs.focal, coeffs.principal)
    ids = select_contour(pixels, contour)
    return torch.gather(vertices, 1, ids[..., None].expand(-1, -1, 3))


_SHIPPED: dict[tuple, tuple[ICTData, ModelLandmarks]] = {}


def shipped_landmarks(model: MorphableModel) -> ModelLandmarks:
    """:class:`ModelLandmarks` of the shipped table for ``model``'s ICT data, dtype and device.

    Built on first use (a few ms) and cached, so per-frame callers pay it once.
    ``model`` may be a vertex subset: only its ``data``, dtype and device are used.
    """
    key = (id(model.data), model.neutral.dtype, str(model.neutral.device))
    if key not in _SHIPPED or _SHIPPED[key][0] is not model.data:
        _SHIPPED[key] = (model.data, ModelLandmarks(model, load_ibug_table()))
    return _SHIPPED[key][1]
