"""The ICT mesh as data: arrays read from the packed npz, regions and landmark vertices.

Regions follow the vertex ranges of the ICT-FaceKit README (each region is a
contiguous vertex range; a polygon belongs to the region of its highest vertex
index, so border quads go to the outer region):

==============  ===============  ===========================================
name            vertices         what
==============  ===============  ===========================================
face            0 - 9408         the skin of the face (material M_Face)
head_neck       9409 - 11247     scalp, ears and neck
mouth_socket    11248 - 13293    inside of the mouth
eye_sockets     13294 - 14061    left and right eye sockets
gums_tongue     14062 - 17038    gums and tongue
teeth           17039 - 21450    upper and lower teeth
eyeballs        21451 - 24590    sclera and iris, left and right
lacrimal        24591 - 24998    lacrimal fluid
eye_blend       24999 - 25046    eye blend layer
eye_occlusion   25047 - 25350    eye occlusion layer
eyelashes       25351 - 26718    eyelashes
==============  ===============  ===========================================

Group names expand to several regions: ``head`` (face, head_neck,
mouth_socket, eye_sockets: the skin surface), ``eyes`` (eyeballs, lacrimal,
eye_blend, eye_occlusion), ``mouth`` (gums_tongue, teeth), ``all``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the ICT Face Model Light's identity modes and expression blendshapes
N_IDENTITY = 100
N_EXPRESSION = 53

REGION_STARTS: dict[str, int] = {
    "face": 0, "head_neck": 9409, "mouth_socket": 11248, "eye_sockets": 13294,
    "gums_tongue": 14062, "teeth": 17039, "eyeballs": 21451, "lacrimal": 24591,
    "eye_blend": 24999, "eye_occlusion": 25047, "eyelashes": 25351,
}
REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("face", "head_neck", "mouth_socket", "eye_sockets"),
    "eyes": ("eyeballs", "lacrimal", "eye_blend", "eye_occlusion"),
    "mouth": ("gums_tongue", "teeth"),
    "all": tuple(REGION_STARTS),
}
#: Regions exported by default for an avatar: skin, eyeballs, mouth (no helper layers). ICT's
#: eyelashes are opaque cards that read as a dark band in viewers without their alpha texture, so
#: they are left out unless asked for (``eyelashes``).
DEFAULT_AVATAR_REGIONS = ("head", "eyeballs", "mouth")


class RegionError(ValueError):
    """An unknown region name."""


def expand_regions(names: Sequence[str]) -> list[str]:
    """Expand group names and check every name; result in mesh order, no repeats."""
    chosen: set[str] = set()
    for raw in names:
        name = raw.strip()
        if name in REGION_GROUPS:
            chosen.update(REGION_GROUPS[name])
        elif name in REGION_STARTS:
            chosen.add(name)
        else:
            known = sorted(REGION_STARTS) + sorted(REGION_GROUPS)
            raise RegionError(f"unknown region {name!r}; known regions: {', '.join(known)}")
    if not chosen:
        raise RegionError("no region selected")
    return [r for r in REGION_STARTS if r in chosen]


@dataclass(frozen=True)
class ICTData:
    """The packed ICT Face Model Light as numpy arrays (V=26719, F=26384 polygons)."""

    neutral: np.ndarray            # (V, 3) float32, cm
    identity_modes: np.ndarray     # (100, V, 3) float16 deltas
    expression_modes: np.ndarray   # (53, V, 3) float16 deltas, ICT order
    identity_names: list[str]
    ict_expression_names: list[str]
    face_vertices: np.ndarray      # (F, 4) int32, -1 pads triangles
    face_uvs: np.ndarray           # (F, 4) int32
    uvs: np.ndarray                # (T, 2) float32
    face_material: np.ndarray      # (F,) int16
    material_names: list[str]
    landmarks68: np.ndarray        # (68,) int64, Multi-PIE order
    vertex_indices: dict

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    def vertex_region(self) -> np.ndarray:
        """``(V,)`` int: index into ``list(REGION_STARTS)`` for every vertex."""
        starts = np.array(list(REGION_STARTS.values()))
        return np.searchsorted(starts, np.arange(self.n_vertices), side="right") - 1

    def face_region(self) -> np.ndarray:
        """``(F,)`` int: the region of each polygon's highest vertex index."""
        return self.vertex_region()[self.face_vertices.max(axis=1)]

    def region_face_mask(self, names: Sequence[str]) -> np.ndarray:
        """``(F,)`` bool: polygons in the named regions (groups allowed)."""
        keys = list(REGION_STARTS)
        wanted = [keys.index(r) for r in expand_regions(names)]
        return np.isin(self.face_region(), wanted)

    def region_vertex_mask(self, names: Sequence[str]) -> np.ndarray:
        """``(V,)`` bool: vertices in the named regions (groups allowed)."""
        keys = list(REGION_STARTS)
        wanted = [keys.index(r) for r in expand_regions(names)]
        return np.isin(self.vertex_region(), wanted)

    def material_face_mask(self, materials: Sequence[str]) -> np.ndarray:
        """``(F,)`` bool: polygons whose material is one of ``materials`` (e.g. ``M_Face``)."""
        unknown = [m for m in materials if m not in self.material_names]
        if unknown:
            raise RegionError(f"unknown materials {unknown}; known: {self.material_names}")
        ids = [self.material_names.index(m) for m in materials]
        return np.isin(self.face_material, ids)

    def polygon_vertex_mask(self, polygons: np.ndarray) -> np.ndarray:
        """``(V,)`` bool: vertices used by the polygons selected by ``polygons`` ``(F,)`` bool."""
        corners = self.face_vertices[polygons]
        mask = np.zeros(self.n_vertices, bool)
        mask[corners[corners >= 0]] = True
        return mask

    def back_of_head_vertices(self) -> np.ndarray:
        """``(V,)`` bool: vertices of the scalp, ears and neck (``M_BackHead`` polygons of ``head_neck``),
        the ring they share with the face included."""
        return self.polygon_vertex_mask(self.material_face_mask(["M_BackHead"]) & self.region_face_mask(["head_neck"]))


def triangulate(polygons: np.ndarray) -> np.ndarray:
    """``(F, 4)`` polygons (-1 padded) -> ``(T, 3)`` triangles; quads split along 0-2.

    Each quad (a, b, c, d) gives (a, b, c) and (a, c, d), keeping the winding.
    """
    polygons = np.asarray(polygons)
    first = polygons[:, [0, 1, 2]]
    quads = polygons[polygons[:, 3] >= 0]
    second = quads[:, [0, 2, 3]]
    return np.concatenate([first, second], axis=0).astype(np.int64)


def load_ict_data(path: str | Path | None = None) -> ICTData:
    """Load the model via the asset registry (see :func:`facecast.weights.registry.resolve_ict_model`)."""
    from facecast.weights.registry import AssetError, resolve_ict_model

    source = resolve_ict_model(path)
    try:
        npz = np.load(source, allow_pickle=False)
        indices = json.loads(str(npz["vertex_indices_json"]))
        return _ict_data(npz, indices)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise AssetError(f"the ICT model {source} is damaged ({type(exc).__name__}: {str(exc)[:120]}); delete it "
                         "to download it again, or point --assets / $FACECAST_ASSETS at a good copy") from None


def _ict_data(npz, indices: dict) -> ICTData:
    return _checked(ICTData(
        neutral=npz["neutral"], identity_modes=npz["identity_modes"],
        expression_modes=npz["expression_modes"],
        identity_names=[str(n) for n in npz["identity_names"]],
        ict_expression_names=[str(n) for n in npz["expression_names"]],
        face_vertices=npz["face_vertices"], face_uvs=npz["face_uvs"], uvs=npz["uvs"],
        face_material=npz["face_material"],
        material_names=[str(n) for n in npz["material_names"]],
        landmarks68=np.asarray(indices["idx_to_landmark_verts"], dtype=np.int64),
        vertex_indices=indices,
    ))


def _checked(data: ICTData) -> ICTData:
    """``data`` if its arrays have the shapes, kinds and ranges of the ICT model; ``ValueError`` naming the first
    that does not (a damaged or foreign file must not become a silently broken head)."""
    v, f, t = len(data.neutral), len(data.face_vertices), len(data.uvs)
    shapes = {"neutral": (v, 3), "identity_modes": (len(data.identity_names), v, 3),
              "expression_modes": (len(data.ict_expression_names), v, 3), "face_vertices": (f, 4),
              "face_uvs": (f, 4), "uvs": (t, 2), "face_material": (f,), "landmarks68": (68,)}
    for name, shape in shapes.items():
        value = getattr(data, name)
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype.kind not in "fiu":
            raise ValueError(f"{name} has shape {np.shape(value)} and dtype {getattr(value, 'dtype', '?')}, "
                             f"expected {shape} numbers")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{name} holds non-finite values")
    if v < 1000 or len(data.identity_names) != N_IDENTITY or len(data.ict_expression_names) != N_EXPRESSION:
        raise ValueError(f"{v} vertices, {len(data.identity_names)} identity and {len(data.ict_expression_names)} "
                         f"expression modes: not the ICT model ({N_IDENTITY} and {N_EXPRESSION})")
    materials = len(data.material_names)
    for name, high, low in (("face_vertices", v, -1), ("face_uvs", t, -1), ("face_material", materials, 0),
                            ("landmarks68", v, 0)):
        value = getattr(data, name)
        if value.size and not (value.min() >= low and value.max() < high):
            raise ValueError(f"{name} holds indices outside [{low}, {high})")
    return data
