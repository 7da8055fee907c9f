"""Convert the original ICT ``FaceXModel/`` OBJ files into the packed ``.npz`` layout.

Layout (see ``../shared/assets/README.md``): ``neutral`` (V,3) float32 cm,
``identity_modes`` (K_id,V,3) and ``expression_modes`` (K_ex,V,3) float16 deltas
from the neutral, their names, polygon tables padded with -1, UVs, per-face
material index and names, and the raw ``vertex_indices.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDICES_FILE = "vertex_indices.json"
N_IDENTITY = 100
SOURCE = ("https://github.com/ICT-VGL/ICT-FaceKit at commit "
          "da5f95a607f5e6b37755b38d3385d7f2853732e5, folder FaceXModel; MIT license")


class ConversionError(ValueError):
    """The FaceXModel folder is incomplete or an OBJ does not match the neutral topology."""


@dataclass(frozen=True)
class ObjTopology:
    """Polygon tables of the neutral OBJ. F polygons of up to 4 corners, -1 padded."""

    uvs: np.ndarray            # (T, 2) float32
    face_vertices: np.ndarray  # (F, 4) int32, 0-based
    face_uvs: np.ndarray       # (F, 4) int32, 0-based
    face_material: np.ndarray  # (F,) int16
    material_names: np.ndarray  # (M,) str


def read_obj_vertices(path: Path) -> np.ndarray:
    """Vertex positions ``(V, 3)`` float64 of an OBJ (only ``v`` lines are read)."""
    with open(path, encoding="utf-8") as handle:
        rows = [line[2:] for line in handle if line.startswith("v ")]
    if not rows:
        raise ConversionError(f"{path}: no vertices found")
    return np.array(" ".join(rows).split(), dtype=np.float64).reshape(-1, 3)


def read_obj_topology(path: Path) -> ObjTopology:
    """Read UVs, polygons (``f v/vt`` with 3 or 4 corners) and ``usemtl`` groups."""
    uvs, faces, face_uvs, materials, names = [], [], [], [], []
    current = -1
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("vt "):
                uvs.append(line[3:])
            elif line.startswith("f "):
                corners = line.split()[1:]
                if not 3 <= len(corners) <= 4:
                    raise ConversionError(f"{path}: polygon with {len(corners)} corners")
                vid = [int(c.split("/")[0]) - 1 for c in corners] + [-1] * (4 - len(corners))
                tid = [int(c.split("/")[1]) - 1 for c in corners] + [-1] * (4 - len(corners))
                faces.append(vid)
                face_uvs.append(tid)
                materials.append(current)
            elif line.startswith("usemtl "):
                name = line.split(maxsplit=1)[1].strip()
                if name not in names:
                    names.append(name)
                current = names.index(name)
    if min(materials, default=-1) < 0:
        raise ConversionError(f"{path}: polygons before the first usemtl")
    return ObjTopology(
        uvs=np.array(" ".join(uvs).split(), dtype=np.float32).reshape(-1, 2),
        face_vertices=np.array(faces, dtype=np.int32),
        face_uvs=np.array(face_uvs, dtype=np.int32),
        face_material=np.array(materials, dtype=np.int16),
        material_names=np.array(names),
    )


def _deltas(folder: Path, stems: Sequence[str], neutral: np.ndarray) -> np.ndarray:
    out = np.empty((len(stems),) + neutral.shape, dtype=np.float16)
    for k, stem in enumerate(stems):
        path = folder / f"{stem}.obj"
        if not path.exists():
            raise ConversionError(f"{path} is missing")
        verts = read_obj_vertices(path)
        if verts.shape != neutral.shape:
            raise ConversionError(f"{path}: {len(verts)} vertices, the neutral has {len(neutral)}")
        out[k] = (verts - neutral).astype(np.float16)
    return out


def convert_facexmodel(folder: Path, identity_names: Sequence[str] | None = None,
                       expression_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Read a ``FaceXModel/`` folder into the packed arrays (a dict of npz keys).

    By default all 100 identities and the 53 expressions named in
    ``vertex_indices.json`` are required; pass explicit name lists to convert a
    subset (used by tests on the sample files).
    """
    folder = Path(folder)
    indices_path = folder / INDICES_FILE
    if not indices_path.exists():
        raise ConversionError(f"{indices_path} is missing")
    indices_text = indices_path.read_text(encoding="utf-8")
    if identity_names is None:
        identity_names = [f"identity{k:03d}" for k in range(N_IDENTITY)]
    if expression_names is None:
        expression_names = json.loads(indices_text)["expressions"]
    neutral = read_obj_vertices(folder / NEUTRAL_FILE)
    topo = read_obj_topology(folder / NEUTRAL_FILE)
    return {
        "neutral": neutral.astype(np.float32),
        "identity_modes": _deltas(folder, identity_names, neutral),
        "expression_modes": _deltas(folder, expression_names, neutral),
        "identity_names": np.array(list(identity_names)),
        "expression_names": np.array(list(expression_names)),
        "face_vertices": topo.face_vertices,
        "face_uvs": topo.face_uvs,
        "uvs": topo.uvs,
        "face_material": topo.face_material,
        "material_names": topo.material_names,
        "vertex_indices_json": np.array(indices_text),
        "source": np.array(SOURCE),
        "units": np.array("centimeters"),
    }


def write_npz_atomic(arrays: dict[str, np.ndarray], dest: Path) -> Path:
    """Write an uncompressed npz next to ``dest`` and rename it into place."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
