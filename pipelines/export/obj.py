"""Wavefront OBJ + MTL bytes for an :class:`~facecast.pipelines.export.avatar.AvatarMesh`.

Positions in metres by default (:class:`~facecast.pipelines.export.layout.MeshOptions`: m, cm or
mm), ``vn`` the area-weighted vertex normals, ``vt`` the ICT UVs as they are (v up, u over
UDIM-like tiles 0-7); triangles by default (``quads=True`` keeps the ICT quads); polygons are
grouped by material (``usemtl``), keeping their order within each material.
Blendshapes are not part of OBJ: use GLB for them. Strings are built by
``np.savetxt`` on whole arrays, never by a Python loop over vertices.
"""

from __future__ import annotations

import io

import numpy as np

from facecast.pipelines.export.avatar import AvatarMesh
from facecast.pipelines.export.layout import MeshOptions, faces

QUAD_FORMAT = "f %d/%d/%d %d/%d/%d %d/%d/%d %d/%d/%d"
TRIANGLE_FORMAT = "f %d/%d/%d %d/%d/%d %d/%d/%d"


def _rows(array: np.ndarray, fmt: str) -> bytes:
    """``np.savetxt`` of a 2-D array into bytes (one ``fmt`` line per row)."""
    buffer = io.BytesIO()
    if len(array):
        np.savetxt(buffer, array, fmt=fmt)
    return buffer.getvalue()


def _polygon_lines(polygons: np.ndarray, face_uvs: np.ndarray) -> bytes:
    """``f`` lines (1-based ``v/vt/vn``, normals indexed as vertices) for ``(F, 4)`` polygons, quads
    and triangles in order."""
    quad = polygons[:, 3] >= 0
    triples = np.stack([polygons, face_uvs, polygons], axis=2).reshape(-1, 12) + 1   # v0 t0 n0 v1 t1 n1 ...
    quad_lines = _rows(triples[quad], QUAD_FORMAT).splitlines()
    triangle_lines = _rows(triples[~quad][:, :9], TRIANGLE_FORMAT).splitlines()
    lines = np.empty(len(polygons), dtype=object)
    lines[np.flatnonzero(quad)] = quad_lines
    lines[np.flatnonzero(~quad)] = triangle_lines
    return b"\n".join(lines.tolist()) + b"\n" if len(lines) else b""


def export_obj(mesh: AvatarMesh, mtl_name: str | None = None, options: MeshOptions = MeshOptions()) -> bytes:
    """OBJ text of ``mesh``; ``mtl_name`` (e.g. ``"head.mtl"``) is written as ``mtllib``."""
    polygons, face_uvs, face_material = faces(mesh, options)
    kind = "polygons" if options.quads else "triangles"
    header = (f"# facecast avatar: {mesh.n_vertices} vertices, {len(polygons)} {kind}, "
              f"units {options.units}, y up, +z to the viewer\n")
    parts = [header.encode()]
    if mtl_name:
        parts.append(f"mtllib {mtl_name}\n".encode())
    parts.append(_rows(mesh.vertices.astype(np.float64) * options.scale, "v %.7g %.7g %.7g"))
    parts.append(_rows(mesh.vertex_normals(), "vn %.5f %.5f %.5f"))
    parts.append(_rows(mesh.uvs, "vt %.6f %.6f"))
    parts.append(b"o avatar\ns 1\n")
    for material, name in enumerate(mesh.material_names):
        chosen = face_material == material
        if not chosen.any():
            continue
        parts.append(f"g {name}\nusemtl {name}\n".encode())
        parts.append(_polygon_lines(polygons[chosen], face_uvs[chosen]))
    return b"".join(parts)


def texture_file_name(stem: str, material: str) -> str:
    """File name of the PNG of ``material``'s texture beside ``{stem}.obj``."""
    return f"{stem}_{material}.png"


def export_mtl(mesh: AvatarMesh, stem: str = "avatar") -> bytes:
    """MTL text: one ``newmtl`` per material with its diffuse colour (``Kd``) and opacity (``d``);
    textured materials name their PNG (:func:`texture_file_name`) in ``map_Kd``."""
    textured = {t.material for t in mesh.textures}
    blocks = ["# facecast avatar materials\n"]
    for material, name in enumerate(mesh.material_names):
        r, g, b, opacity = (1.0, 1.0, 1.0, 1.0) if name in textured else mesh.colour(material)
        texture = f"map_Kd {texture_file_name(stem, name)}\n" if name in textured else ""
        blocks.append(f"newmtl {name}\nKa 0 0 0\nKd {r:.4f} {g:.4f} {b:.4f}\nKs 0.05 0.05 0.05\n"
                      f"Ns 20\nd {opacity:.3f}\nillum 2\n{texture}\n")
    return "".join(blocks).encode()
