"""Binary little-endian PLY bytes for an :class:`~facecast.pipelines.export.avatar.AvatarMesh`.

One vertex per distinct (position, UV) pair (vertices are split along the UV seams, as every
reader of per-vertex UVs needs), each with ``float x, y, z`` (metres by default, see
:class:`~facecast.pipelines.export.layout.MeshOptions`), ``float nx, ny, nz`` (the area-weighted
normal of its position), ``float s, t`` (the ICT UV, v up) and ``uchar red, green, blue`` (the
texture's colour under the UV where the material has a texture, else the material's colour); then
one ``list uchar int vertex_indices`` per polygon, triangles by default (``quads=True`` keeps the
quads), in the mesh's order. Materials and blendshapes are in the OBJ and GLB exports.
"""

from __future__ import annotations

import numpy as np

from facecast.pipelines.export.avatar import AvatarMesh
from facecast.pipelines.export.layout import MeshOptions, corner_vertices, faces, vertex_colours

VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
                   ("s", "<f4"), ("t", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def _header(vertices: int, polygons: int, units: str) -> bytes:
    properties = "".join(f"property {'uchar' if VERTEX[n].kind == 'u' else 'float'} {n}\n" for n in VERTEX.names)
    return (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment facecast avatar; units {units}, y up, +z to the viewer\n"
        f"element vertex {vertices}\n{properties}"
        f"element face {polygons}\n"
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


def export_ply(mesh: AvatarMesh, options: MeshOptions = MeshOptions()) -> bytes:
    """Binary little-endian PLY of ``mesh`` (see the module doc)."""
    polygons, face_uvs, material = faces(mesh, options)
    corners = corner_vertices(polygons, face_uvs, len(mesh.uvs))
    records = np.zeros(len(corners.source), dtype=VERTEX)
    position = mesh.vertices[corners.source].astype(np.float64) * options.scale
    normal = mesh.vertex_normals()[corners.source]
    uv = mesh.uvs[corners.uv]
    colour = vertex_colours(mesh, corners, material)
    for k, axis in enumerate("xyz"):
        records[axis], records[f"n{axis}"] = position[:, k], normal[:, k]
    records["s"], records["t"] = uv[:, 0], uv[:, 1]
    records["red"], records["green"], records["blue"] = colour.T
    return _header(len(records), len(corners.polygons), options.units) + records.tobytes() + _face_records(
        corners.polygons)
