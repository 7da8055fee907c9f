"""Wavefront OBJ + MTL bytes for an :class:`~facecast.pipelines.export.avatar.AvatarMesh`.

Positions stay in the mesh's units (cm for ICT avatars), ``vt`` are the ICT UVs
as they are (v up, u over UDIM-like tiles 0-7), polygons keep their quads and are
grouped by material (``usemtl``), keeping their order within each material.
Blendshapes are not part of OBJ: use GLB for them. Strings are built by
``np.savetxt`` on whole arrays, never by a Python loop over vertices.
"""

from __future__ import annotations

import io

import numpy as np

from facecast.pipelines.export.avatar import AvatarMesh

QUAD_FORMAT = "f %d/%d %d/%d %d/%d %d/%d"
TRIANGLE_FORMAT = "f %d/%d %d/%d %d/%d"


def _rows(array: np.ndarray, fmt: str) -> bytes:
    """``np.savetxt`` of a 2-D array into bytes (one ``fmt`` line per row)."""
    buffer = io.BytesIO()
    if len(array):
        np.savetxt(buffer, array, fmt=fmt)
    return buffer.getvalue()


def _polygon_lines(polygons: np.ndarray, face_uvs: np.ndarray) -> bytes:
    """``f`` lines (1-based ``v/vt``) for ``(F, 4)`` polygons, quads and triangles in order."""
    quad = polygons[:, 3] >= 0
    pairs = np.stack([polygons, face_uvs], axis=2).reshape(-1, 8) + 1   # v0 t0 v1 t1 ...
    quad_lines = _rows(pairs[quad], QUAD_FORMAT).splitlines()
    triangle_lines = _rows(pairs[~quad][:, :6], TRIANGLE_FORMAT).splitlines()
    lines = np.empty(len(polygons), dtype=object)
    lines[np.flatnonzero(quad)] = quad_lines
    lines[np.flatnonzero(~quad)] = triangle_lines
    return b"\n".join(lines.tolist()) + b"\n" if len(lines) else b""


def export_obj(mesh: AvatarMesh, mtl_name: str | None = None) -> bytes:
    """OBJ text of ``mesh``; ``mtl_name`` (e.g. ``"head.mtl"``) is written as ``mtllib``."""
    header = (f"# facecast avatar: {mesh.n_vertices} vertices, {mesh.n_polygons} polygons, "
              f"units as exported (cm by default), y up, +z to the viewer\n")
    parts = [header.encode()]
    if mtl_name:
        parts.append(f"mtllib {mtl_name}\n".encode())
    parts.append(_rows(mesh.vertices, "v %.6f %.6f %.6f"))
    parts.append(_rows(mesh.uvs, "vt %.6f %.6f"))
    parts.append(b"o avatar\ns 1\n")
    for material, name in enumerate(mesh.material_names):
        chosen = mesh.face_material == material
        if not chosen.any():
            continue
        parts.append(f"g {name}\nusemtl {name}\n".encode())
        parts.append(_polygon_lines(mesh.polygons[chosen], mesh.face_uvs[chosen]))
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
