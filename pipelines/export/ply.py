"""Binary little-endian PLY bytes for an :class:`~facecast.pipelines.export.avatar.AvatarMesh`.

Holds geometry only: ``float x, y, z`` per vertex (the mesh's units, cm for ICT
avatars) and one ``list uchar int vertex_indices`` per polygon, quads kept as
quads and polygons in the mesh's order. UVs, materials and blendshapes are in
the OBJ and GLB exports.
"""

from __future__ import annotations

import numpy as np

from facecast.pipelines.export.avatar import AvatarMesh


def _header(mesh: AvatarMesh) -> bytes:
    return (
        "ply\nformat binary_little_endian 1.0\n"
        "comment facecast avatar; units as exported (cm by default), y up, +z to the viewer\n"
        f"element vertex {mesh.n_vertices}\n"
        "property float x\nproperty float y\nproperty float z\n"
        f"element face {mesh.n_polygons}\n"
        "property list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")


def _face_records(polygons: np.ndarray) -> bytes:
    """Variable-length face records ``[n: u1][n x i4]`` for ``(F, 4)`` -1 padded polygons.

    Built as one byte array: each record starts at the cumulative sum of the
    sizes before it (13 bytes for a triangle, 17 for a quad).
    """
    counts = np.where(polygons[:, 3] >= 0, 4, 3).astype(np.int64)
    sizes = 1 + 4 * counts
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    out[starts] = counts
    index_bytes = np.ascontiguousarray(polygons, dtype="<i4").view(np.uint8).reshape(-1, 16)
    offsets = starts[:, None] + 1 + np.arange(16)[None, :]
    keep = np.arange(16)[None, :] < 4 * counts[:, None]
    out[offsets[keep]] = index_bytes[keep]
    return out.tobytes()


def export_ply(mesh: AvatarMesh) -> bytes:
    """Binary little-endian PLY of ``mesh`` (vertices, polygons as index lists)."""
    vertices = np.ascontiguousarray(mesh.vertices, dtype="<f4").tobytes()
    return _header(mesh) + vertices + _face_records(mesh.polygons)
