"""Build ``weights/mediapipe478_ict.npz``: MediaPipe Face Mesh landmarks on the ICT mesh.

Run: ``python -m facecast.recon.calibrate.mediapipe_table --assets /path/to/assets``
(reads ``mediapipe/canonical_face_model.obj`` and the ICT model; writes the
table, by default into the installed ``facecast/weights`` folder).

Steps:

1. Landmark order of the canonical OBJ. The copy in the assets is the older
   Apple ModelIO export, whose vertex rows are *not* in landmark order. We
   render the mesh (flat grey, painter's algorithm) at 15 head poses, run
   MediaPipe Face Mesh on the renders and match detected landmarks to
   projected vertices by the Hungarian method on the pose-summed squared
   distances. A file already in landmark order comes back as the identity.
2. Rigid: a similarity (Umeyama) on 14 points both meshes name (eye corners,
   nose bridge/tip/base, mouth corners, lip mid-points, chin).
3. Non-rigid: 30 rounds of closest-point registration onto the ICT skin (face
   and head/neck regions), each a sparse least-squares solve of edge
   smoothness (stiffness 10 -> 0.5) + closest points + the 14 anchors.
4. Each registered point's closest point on the ICT skin -> (triangle, barycentrics).
   Irises 468-477 go on ICT's eyeballs: centres at the corneal apex, edges at the
   limbus, assumed at 0.49 x the eyeball radius (human iris/eyeball ratio).
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.recon.landmarks.correspondence import (
    MEDIAPIPE_TABLE,
    SURFACE_IRIS_CENTRE,
    SURFACE_IRIS_EDGE,
    default_table_path,
)
from facecast.recon.model.topology import ICTData, load_ict_data, triangulate

#: (MediaPipe index, iBUG-68 index): points with the same meaning on both meshes.
ANCHORS: tuple[tuple[int, int], ...] = (
    (33, 36), (133, 39), (362, 42), (263, 45), (168, 27), (4, 30), (2, 33),
    (61, 48), (291, 54), (0, 51), (17, 57), (13, 62), (14, 66), (152, 8),
)
#: MediaPipe iris rows: (centre, +x, +y, -x, -y) in the subject's frame (x to the
#: subject's left, y up), for the subject's right eye then the left eye.
IRISES = ((468, 469, 470, 471, 472, "M_ScleraRight"), (473, 474, 475, 476, 477, "M_ScleraLeft"))
IRIS_TO_EYEBALL = 11.7 / 24.0  # human iris diameter / eyeball diameter
POSES_DEGREES = tuple(itertools.product((-20, -10, 0, 10, 20), (-10, 0, 10)))


@dataclass(frozen=True)
class ObjMesh:
    """vertices ``(V, 3)`` float64 and triangles ``(F, 3)`` int64 (0-based) of an OBJ file."""

    vertices: np.ndarray
    faces: np.ndarray


def read_obj(path: Path) -> ObjMesh:
    """Read ``v`` and triangular ``f`` lines (``f a/ta b/tb c/tc``) of an OBJ file."""
    vertices, faces = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("v "):
            vertices.append([float(v) for v in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(token.split("/")[0]) - 1 for token in line.split()[1:4]])
    return ObjMesh(np.array(vertices), np.array(faces, dtype=np.int64))


def rotation(yaw_degrees: float, pitch_degrees: float) -> np.ndarray:
    """``(3, 3)`` rotation: yaw about y, then pitch about x."""
    y, p = np.radians(yaw_degrees), np.radians(pitch_degrees)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rx @ ry


def render_mesh(mesh: ObjMesh, turn: np.ndarray, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic flat-shaded render (y up, +z to the viewer).

    Returns ``(size, size, 3)`` uint8 RGB and ``(V, 2)`` projected vertices in
    pixels (centre of pixel (0, 0) at (0, 0)).
    """
    import cv2

    points = (mesh.vertices - mesh.vertices.mean(axis=0)) @ turn.T
    scale = 0.8 * size / np.ptp(points[:, :2], axis=0).max()
    pixels = np.stack([points[:, 0] * scale + size / 2, -points[:, 1] * scale + size / 2], axis=1)
    tri = points[mesh.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    normals *= np.sign(normals[:, 2].mean())
    light = np.array([0.3, 0.3, 1.0]) / np.linalg.norm([0.3, 0.3, 1.0])
    shade = 0.15 + 0.8 * np.clip(normals @ light, 0.0, 1.0)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    for f in np.argsort(tri[:, :, 2].mean(axis=1)):  # far to near
        colour = tuple(int(c * shade[f]) for c in (220, 190, 170))
        corners = np.round((pixels[mesh.faces[f]] + 0.5) * 16).astype(np.int32)
        cv2.fillConvexPoly(image, corners, colour, lineType=cv2.LINE_AA, shift=4)
    return image, pixels


def recover_landmark_order(mesh: ObjMesh) -> tuple[np.ndarray, float]:
    """``(468,)`` OBJ row of each MediaPipe landmark, and the mean match distance (pixels)."""
    from scipy.optimize import linear_sum_assignment

    from facecast.recon.landmarks.mediapipe_mesh import MediaPipeConfig, MediaPipeDetector

    if mesh.vertices.shape[0] != 468:
        raise ValueError(f"the canonical face model must have 468 vertices, got {mesh.vertices.shape[0]}")
    cost, used = np.zeros((468, 468)), 0
    with MediaPipeDetector(MediaPipeConfig(score_faces=False)) as detector:
        for yaw, pitch in POSES_DEGREES:
            image, pixels = render_mesh(mesh, rotation(yaw, pitch))
            faces = detector.detect(image)
            if faces:
                cost += ((faces[0].points[:468, None, :] - pixels[None]) ** 2).sum(axis=-1)
                used += 1
    if used < 3:
        raise RuntimeError(f"MediaPipe found the rendered canonical face in only {used} of "
                           f"{len(POSES_DEGREES)} poses; cannot recover the landmark order")
    _, order = linear_sum_assignment(cost)
    return order, float(np.sqrt(cost[np.arange(468), order] / used).mean())


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: scale, ``(3, 3)`` rotation, ``(3,)`` translation minimising ``|s R source + t - target|``."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float((sigma * np.diag(d)).sum() / (a ** 2).sum())
    return scale, rot, mu_t - scale * rot @ mu_s


class Surface:
    """Closest points on a triangle set (open3d ``RaycastingScene``)."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray) -> None:
        import open3d as o3d

        self.triangles = np.asarray(triangles, dtype=np.int64)
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)),
                                  o3d.core.Tensor(self.triangles.astype(np.uint32)))

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(N, 3)`` -> closest points ``(N, 3)``, triangle vertex ids ``(N, 3)``, barycentrics ``(N, 3)``."""
        import open3d as o3d

        ans = self._scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
        tri = ans["primitive_ids"].numpy().astype(np.int64)
        uv = ans["primitive_uvs"].numpy().astype(np.float64)
        bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
        bary = np.clip(bary, 0.0, 1.0)
        bary /= bary.sum(axis=1, keepdims=True)
        return ans["points"].numpy().astype(np.float64), self.triangles[tri], bary


def register_nonrigid(start: np.ndarray, edges: np.ndarray, surface: Surface, anchor_rows: np.ndarray,
                      anchor_targets: np.ndarray, stiffness: tuple[float, ...] = (10, 5, 2, 1, 0.5),
                      rounds: int = 6, anchor_weight: float = 5.0, reject: float = 1.5) -> np.ndarray:
    """Closest-point non-rigid registration of ``(N, 3)`` points (cm) with edge smoothness.

    Minimises ``k |D (X - start)|^2 + sum_i w_i |X_i - c_i|^2 + a sum_l |X_l - T_l|^2``
    per round, where D is the edge difference operator, c_i the closest surface
    point of the current X_i (``w_i = 0`` when farther than ``reject`` cm).
    """
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    n = start.shape[0]
    rows = np.repeat(np.arange(len(edges)), 2)
    diff = sparse.csr_matrix((np.tile([1.0, -1.0], len(edges)), (rows, edges.reshape(-1))),
                             shape=(len(edges), n))
    laplace = (diff.T @ diff).tocsc()
    anchors = sparse.csr_matrix((np.full(len(anchor_rows), anchor_weight),
                                 (anchor_rows, anchor_rows)), shape=(n, n))
    anchor_rhs = np.zeros_like(start)
    anchor_rhs[anchor_rows] = anchor_weight * anchor_targets
    current = start.copy()
    for k in stiffness:
        for _ in range(rounds):
            target, _, _ = surface.closest(current)
            weight = (np.linalg.norm(target - current, axis=1) < reject).astype(np.float64)
            system = (k * laplace + sparse.diags(weight) + anchors).tocsc()
            rhs = k * (laplace @ start) + weight[:, None] * target + anchor_rhs
            current = np.stack([spsolve(system, rhs[:, c]) for c in range(3)], axis=1)
    return current


def iris_points(data: ICTData) -> tuple[np.ndarray, np.ndarray]:
    """``(10, 3)`` vertex ids and barycentrics for MediaPipe rows 468-477 on ICT's eyeballs."""
    neutral = data.neutral.astype(np.float64)
    ids_out, bary_out = [], []
    for *_, material in IRISES:
        mask = data.material_face_mask([material])
        shell = Surface(neutral, triangulate(data.face_vertices[mask]))
        ids = np.unique(data.face_vertices[mask])
        ids = ids[ids >= 0]
        rear = neutral[ids][neutral[ids, 2] < np.percentile(neutral[ids, 2], 40)]
        lsq = np.linalg.lstsq(np.c_[2 * rear, np.ones(len(rear))], (rear ** 2).sum(axis=1), rcond=None)[0]
        centre = lsq[:3]
        radius = float(np.sqrt(lsq[3] + centre @ centre))
        apex = ids[np.argmax(np.linalg.norm(neutral[ids] - centre, axis=1))]
        axis = (neutral[apex] - centre) / np.linalg.norm(neutral[apex] - centre)
        rho = IRIS_TO_EYEBALL * radius
        targets = [neutral[apex]]
        for direction in (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([-1.0, 0, 0]),
                          np.array([0, -1.0, 0])):
            side = direction - (direction @ axis) * axis
            side /= np.linalg.norm(side)
            targets.append(centre + axis * np.sqrt(radius ** 2 - rho ** 2) + side * rho)
        _, tri_ids, bary = shell.closest(np.array(targets))
        ids_out.append(tri_ids)
        bary_out.append(bary)
    return np.concatenate(ids_out), np.concatenate(bary_out)


@dataclass(frozen=True)
class BuildReport:
    """Registration residuals in mm: (median, 95th percentile, max) triples."""

    match_pixels: float
    anchor_rigid: tuple[float, float, float]
    anchor_final: tuple[float, float, float]
    surface_rigid: tuple[float, float, float]
    surface_final: tuple[float, float, float]
    nonrigid_motion: tuple[float, float, float]

    def lines(self) -> list[str]:
        fmt = lambda t: f"median {t[0]:.2f}, p95 {t[1]:.2f}, max {t[2]:.2f} mm"  # noqa: E731
        return [f"landmark-order match: mean {self.match_pixels:.1f} px on 512 px renders",
                f"anchors after similarity:     {fmt(self.anchor_rigid)}",
                f"anchors after non-rigid:      {fmt(self.anchor_final)}",
                f"to ICT skin after similarity: {fmt(self.surface_rigid)}",
                f"to ICT skin after non-rigid:  {fmt(self.surface_final)}",
                f"non-rigid displacement:       {fmt(self.nonrigid_motion)}"]


def _stats(distances_cm: np.ndarray) -> tuple[float, float, float]:
    mm = 10.0 * np.asarray(distances_cm)
    return float(np.median(mm)), float(np.percentile(mm, 95)), float(mm.max())


def build(assets: Path) -> tuple[dict[str, np.ndarray], BuildReport]:
    """Compute the table arrays (keys as stored in the npz) and the residual report."""
    data = load_ict_data(assets / "ict-facekit" / "ict_facekit_light.npz")
    mesh = read_obj(assets / "mediapipe" / "canonical_face_model.obj")
    order, match_px = recover_landmark_order(mesh)
    canonical = mesh.vertices[order]
    inverse = np.argsort(order)
    tri = inverse[mesh.faces]
    edges = np.unique(np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1), axis=0)
    neutral = data.neutral.astype(np.float64)
    mp_rows = np.array([a for a, _ in ANCHORS])
    targets = neutral[data.landmarks68[[b for _, b in ANCHORS]]]
    scale, rot, shift = similarity(canonical[mp_rows], targets)
    rigid = scale * canonical @ rot.T + shift
    skin = Surface(neutral, triangulate(data.face_vertices[data.region_face_mask(["face", "head_neck"])]))
    final = register_nonrigid(rigid, edges, skin, mp_rows, targets)
    rigid_closest, _, _ = skin.closest(rigid)
    final_closest, tri_ids, bary = skin.closest(final)
    iris_ids, iris_bary = iris_points(data)
    surface = np.zeros(478, dtype=np.int8)
    surface[[468, 473]] = SURFACE_IRIS_CENTRE
    surface[[469, 470, 471, 472, 474, 475, 476, 477]] = SURFACE_IRIS_EDGE
    residual = np.linalg.norm(final - final_closest, axis=1)
    arrays = {
        "vertex_ids": np.concatenate([tri_ids, iris_ids]).astype(np.int32),
        "barycentric": np.concatenate([bary, iris_bary]).astype(np.float32),
        "surface": surface,
        "registered": final.astype(np.float32),
        "canonical_order": order.astype(np.int16),
        "residual_mm": (10.0 * residual).astype(np.float32),
    }
    report = BuildReport(
        match_pixels=match_px,
        anchor_rigid=_stats(np.linalg.norm(rigid[mp_rows] - targets, axis=1)),
        anchor_final=_stats(np.linalg.norm(final[mp_rows] - targets, axis=1)),
        surface_rigid=_stats(np.linalg.norm(rigid - rigid_closest, axis=1)),
        surface_final=_stats(residual),
        nonrigid_motion=_stats(np.linalg.norm(final - rigid, axis=1)))
    return arrays, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, required=True,
                        help="folder holding ict-facekit/ and mediapipe/")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output npz (default: the package's weights/{MEDIAPIPE_TABLE})")
    args = parser.parse_args(argv)
    arrays, report = build(args.assets)
    out = args.out or default_table_path()
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1024:.1f} kB)")
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
