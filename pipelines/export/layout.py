"""What the OBJ and PLY writers share: units, triangulation, and one vertex per (position, UV) pair.

Readers disagree about meshes that mix quads and triangles (Open3D's OBJ reader drops quads, trimesh
rejects such a PLY) and about units (Blender takes an OBJ's numbers as metres), so by default both
formats are written in metres with triangles only; :class:`MeshOptions` chooses otherwise.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from facecast.pipelines.export.arkit_morphs import check_names
from facecast.pipelines.export.avatar import AvatarMesh
from facecast.recon.model.topology import triangulate

#: the avatar's centimetres in each unit
UNIT_SCALE = {"m": 0.01, "cm": 1.0, "mm": 10.0}


@dataclass(frozen=True)
class MeshOptions:
    """units: ``"m"`` (default), ``"cm"`` or ``"mm"``; quads: keep the ICT quads (else triangles only,
    quads split along their 0-2 diagonal); names: a GLB's morph target names, ``"arkit"`` (the 52
    exact ARKit shapes) or ``"ict"`` (the 53 ICT channels), see :mod:`~facecast.pipelines.export.arkit_morphs`."""

    units: str = "m"
    quads: bool = False
    names: str = "arkit"

    def __post_init__(self) -> None:
        check_names(self.names)
        if self.units not in UNIT_SCALE:
            raise ValueError(f"units must be one of {', '.join(UNIT_SCALE)}, got {self.units!r}")

    @property
    def scale(self) -> float:
        """The factor from the avatar's centimetres to these units."""
        return UNIT_SCALE[self.units]


def faces(mesh: AvatarMesh, options: MeshOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(polygons (F', 4), face_uvs (F', 4), material (F',))`` as written: the mesh's own polygons with
    ``quads``, else its triangles (``-1`` in column 3), each triangle with its polygon's material."""
    if options.quads:
        return mesh.polygons, mesh.face_uvs, mesh.face_material
    quad = mesh.polygons[:, 3] >= 0
    pad = lambda t: np.concatenate([t, np.full((len(t), 1), -1)], 1).astype(np.int32)  # noqa: E731
    material = np.concatenate([mesh.face_material, mesh.face_material[quad]])
    return pad(triangulate(mesh.polygons)), pad(triangulate(mesh.face_uvs)), material


@dataclass(frozen=True)
class CornerVertices:
    """One vertex per distinct (position, UV) pair of the written polygons.

    source: ``(U,)`` index into the mesh's vertices; uv: ``(U,)`` index into its UVs;
    polygons: ``(F, 4)`` indices into these U vertices, -1 padded.
    """

    source: np.ndarray
    uv: np.ndarray
    polygons: np.ndarray


def corner_vertices(polygons: np.ndarray, face_uvs: np.ndarray, n_uvs: int) -> CornerVertices:
    """Split vertices along UV seams: ``polygons`` and ``face_uvs`` ``(F, 4)`` -1 padded."""
    used = polygons >= 0
    keys = polygons.astype(np.int64) * n_uvs + face_uvs
    unique, inverse = np.unique(keys[used], return_inverse=True)
    out = np.full(polygons.shape, -1, dtype=np.int32)
    out[used] = inverse
    return CornerVertices(unique // n_uvs, unique % n_uvs, out)


def vertex_colours(mesh: AvatarMesh, corners: CornerVertices, material: np.ndarray) -> np.ndarray:
    """``(U, 3)`` uint8 sRGB per corner vertex: the texture's texel under its UV where its material has
    a texture, else the material's colour (``material (F,)`` per polygon of ``corners``)."""
    from PIL import Image

    owner = np.zeros(len(corners.source), dtype=np.int64)  # a material per vertex: that of a polygon using it
    used = corners.polygons >= 0
    owner[corners.polygons[used]] = np.broadcast_to(material[:, None], corners.polygons.shape)[used]
    table = np.array([mesh.colour(m)[:3] for m in range(len(mesh.material_names))]) * 255
    colours = table[owner]
    for texture in mesh.textures:
        if texture.material not in mesh.material_names:
            continue
        chosen = owner == mesh.material_names.index(texture.material)
        image = np.asarray(Image.open(io.BytesIO(texture.png)).convert("RGB"))
        height, width = image.shape[:2]
        uv = mesh.uvs[corners.uv[chosen]].astype(np.float64) % 1.0  # v up, as in the OBJ
        column = np.clip((uv[:, 0] * width).astype(int), 0, width - 1)
        row = np.clip(((1.0 - uv[:, 1]) * height).astype(int), 0, height - 1)
        colours[chosen] = image[row, column]
    return np.round(colours).astype(np.uint8)
