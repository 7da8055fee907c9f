"""A static avatar ready for export: one identity of the ICT model, cut to chosen regions.

:class:`AvatarMesh` is what every exporter in :mod:`facecast.pipelines.export`
reads: the neutral-expression head of one identity in cm (y up, +z towards the
viewer), its polygons (quads kept, triangles padded with -1), UVs (ICT's
UDIM-like tiles, u in [0, 7], kept as they are), a material per polygon and
the 53 ARKit-named expression blendshapes as per-vertex deltas (morph targets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from facecast.recon.model.topology import DEFAULT_AVATAR_REGIONS, REGION_STARTS, expand_regions, triangulate
from facecast.transfer.json_files import identity_weights, read_json_file

if TYPE_CHECKING:
    from facecast.recon.model.morphable import MorphableModel

#: Random identities draw each of the 100 PCA weights from N(0, RANDOM_IDENTITY_SCALE^2) ...
RANDOM_IDENTITY_SCALE = 0.8
#: ... clipped to +-RANDOM_IDENTITY_CLIP, so that no single mode produces a caricature.
RANDOM_IDENTITY_CLIP = 2.0
N_IDENTITY = 100

#: sRGB base colour and opacity of each ICT material, used by the OBJ (.mtl) and GLB exporters.
MATERIAL_COLOURS: Mapping[str, tuple[float, float, float, float]] = MappingProxyType({
    "M_Face": (0.87, 0.68, 0.58, 1.0), "M_BackHead": (0.87, 0.68, 0.58, 1.0),
    "M_GumsTongue": (0.78, 0.36, 0.38, 1.0), "M_Teeth": (0.93, 0.91, 0.84, 1.0),
    "M_ScleraLeft": (0.88, 0.86, 0.83, 1.0), "M_ScleraRight": (0.88, 0.86, 0.83, 1.0),
    "M_IrisLeft": (0.33, 0.23, 0.16, 1.0), "M_IrisRight": (0.33, 0.23, 0.16, 1.0), "M_Pupil": (0.02, 0.02, 0.02, 1.0),
    "M_LacrimalFluid": (0.90, 0.90, 0.95, 0.25), "M_EyeBlend": (0.87, 0.68, 0.58, 0.25),
    "M_EyeOcclusion": (0.20, 0.15, 0.12, 0.35), "M_EyeLashes": (0.08, 0.06, 0.05, 1.0),
})
#: Colour of materials missing from :data:`MATERIAL_COLOURS`.
FALLBACK_COLOUR = (0.7, 0.7, 0.7, 1.0)


class IdentityError(ValueError):
    """An identity specification that cannot be used (bad file, wrong length, non-finite)."""


@dataclass(frozen=True)
class MaterialTexture:
    """A PNG base colour texture for the material named ``material`` (e.g. ``"M_Face"``)."""

    material: str
    png: bytes


@dataclass(frozen=True)
class AvatarMesh:
    """An exportable mesh with blendshapes.

    vertices: ``(N, 3)`` float32, cm.
    polygons: ``(F, 4)`` int32 indices into ``vertices``; triangles have ``-1`` in column 3.
    uvs: ``(T, 2)`` float32 texture coordinates (OBJ convention: v up; u spans UDIM tiles).
    face_uvs: ``(F, 4)`` int32 indices into ``uvs``, ``-1`` exactly where ``polygons`` is.
    face_material: ``(F,)`` int32 index into ``material_names``.
    morph_deltas: ``(K, N, 3)`` float32 cm offsets; shape k at weight w adds ``w * morph_deltas[k]``.
    morph_names: K names (ARKit camelCase for the ICT model).
    face_region: ``(F,)`` int32 index into ``region_names`` (the ICT region of each polygon).
    source_vertex_ids: ``(N,)`` int64 index of each vertex in the full ICT mesh.
    textures: base colour PNGs of some materials (e.g. a face texture baked from a photo).
    colour_overrides: ``(material name, sRGB + opacity)`` pairs that replace
        :data:`MATERIAL_COLOURS` for this avatar (e.g. the iris colour and skin tone of a photo).
    """

    vertices: np.ndarray
    polygons: np.ndarray
    uvs: np.ndarray
    face_uvs: np.ndarray
    face_material: np.ndarray
    material_names: tuple[str, ...]
    morph_deltas: np.ndarray
    morph_names: tuple[str, ...]
    face_region: np.ndarray
    region_names: tuple[str, ...]
    source_vertex_ids: np.ndarray
    textures: tuple[MaterialTexture, ...] = ()
    colour_overrides: tuple[tuple[str, tuple[float, float, float, float]], ...] = ()

    def __post_init__(self) -> None:
        n, f = len(self.vertices), len(self.polygons)
        _check_shape("vertices", self.vertices, (n, 3))
        _check_shape("polygons", self.polygons, (f, 4))
        _check_shape("uvs", self.uvs, (len(self.uvs), 2))
        _check_shape("face_uvs", self.face_uvs, (f, 4))
        _check_shape("face_material", self.face_material, (f,))
        _check_shape("face_region", self.face_region, (f,))
        _check_shape("morph_deltas", self.morph_deltas, (len(self.morph_names), n, 3))
        _check_shape("source_vertex_ids", self.source_vertex_ids, (n,))
        if f and (self.polygons[:, :3].min() < 0 or self.polygons.max() >= n):
            raise ValueError(f"polygons must index vertices in [0, {n}) (only column 3 may be -1)")
        if not np.array_equal(self.polygons < 0, self.face_uvs < 0):
            raise ValueError("face_uvs must be -1 exactly where polygons are -1")
        if f and self.face_uvs.max() >= len(self.uvs):
            raise ValueError(f"face_uvs must index uvs in [0, {len(self.uvs)})")
        if f and (self.face_material.min() < 0 or self.face_material.max() >= len(self.material_names)):
            raise ValueError(f"face_material must index material_names ({len(self.material_names)})")
        if f and (self.face_region.min() < 0 or self.face_region.max() >= len(self.region_names)):
            raise ValueError(f"face_region must index region_names ({len(self.region_names)})")
        names = [t.material for t in self.textures]
        if len(set(names)) != len(names) or not set(names) <= set(self.material_names):
            raise ValueError(f"textures must name distinct materials of the mesh, got {names}")
        if any(not t.png.startswith(b"\x89PNG\r\n\x1a\n") for t in self.textures):
            raise ValueError("textures must be PNG data")
        for name, colour in self.colour_overrides:
            if len(colour) != 4 or not all(0.0 <= float(c) <= 1.0 for c in colour):
                raise ValueError(f"colour of {name!r} must be 4 numbers in [0, 1] (sRGB, opacity), got {colour}")

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_polygons(self) -> int:
        return int(self.polygons.shape[0])

    @property
    def is_quad(self) -> np.ndarray:
        """``(F,)`` bool: True for quads, False for triangles."""
        return self.polygons[:, 3] >= 0

    def colour(self, material: int) -> tuple[float, float, float, float]:
        """sRGB ``(r, g, b, opacity)`` in [0, 1] of material number ``material``."""
        name = self.material_names[material]
        return dict(self.colour_overrides).get(name) or MATERIAL_COLOURS.get(name, FALLBACK_COLOUR)

    def with_colours(self, colours: Mapping[str, Sequence[float]]) -> AvatarMesh:
        """The same avatar with ``{material: (r, g, b) or (r, g, b, opacity)}`` sRGB colours (materials it
        lacks are ignored; opacity defaults to the material's own)."""
        overrides = dict(self.colour_overrides)
        for name, colour in colours.items():
            if name in self.material_names:
                opacity = MATERIAL_COLOURS.get(name, FALLBACK_COLOUR)[3]
                overrides[name] = tuple(float(c) for c in (*colour[:3], colour[3] if len(colour) > 3 else opacity))
        return replace(self, colour_overrides=tuple(overrides.items()))

    def vertex_normals(self) -> np.ndarray:
        """``(N, 3)`` float32 unit normals: area-weighted sums of the adjacent polygons' normals.

        Vertices whose normal vanishes (no or degenerate polygons) get ``(0, 0, 1)``.
        """
        triangles = triangulate(self.polygons)
        corners = self.vertices.astype(np.float64)[triangles]
        # the cross product's length is twice the triangle's area: area weighting for free
        face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        sums = np.stack([np.bincount(triangles.ravel(), np.repeat(face_normals[:, c], 3),
                                     minlength=self.n_vertices) for c in range(3)], axis=1)
        length = np.linalg.norm(sums, axis=1, keepdims=True)
        normals = np.where(length > 1e-12, sums / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
        return normals.astype(np.float32)

    def scaled(self, factor: float) -> AvatarMesh:
        """The same avatar with positions and morph deltas times ``factor`` (0.01: cm -> m)."""
        return replace(self, vertices=(self.vertices * np.float32(factor)).astype(np.float32),
                       morph_deltas=(self.morph_deltas * np.float32(factor)).astype(np.float32))


def _check_shape(name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    if not isinstance(value, np.ndarray) or value.shape != shape:
        got = getattr(value, "shape", type(value).__name__)
        raise ValueError(f"AvatarMesh.{name} must have shape {shape}, got {got}")


def compact_indices(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber used indices ``0..U-1`` in increasing order of the old index.

    indices: ``(F, C)`` ints, ``-1`` meaning "no index" (kept as -1).
    Returns ``(new_indices (F, C), used (U,))`` with ``old = used[new]`` where new >= 0.
    """
    valid = indices >= 0
    used = np.unique(indices[valid])
    new = np.full(indices.shape, -1, dtype=np.int32)
    new[valid] = np.searchsorted(used, indices[valid])
    return new, used.astype(np.int64)


def build_avatar(model: MorphableModel, identity: np.ndarray,
                 regions: Sequence[str] = DEFAULT_AVATAR_REGIONS, open_eyes: bool = True) -> AvatarMesh:
    """The neutral head of ``identity`` cut to ``regions``, with all expression blendshapes.

    model: the full (not subset) :class:`~facecast.recon.model.morphable.MorphableModel`.
    identity: ``(100,)`` PCA weights.
    regions: ICT region or group names (see :mod:`facecast.recon.model.topology`); raises
        :class:`~facecast.recon.model.topology.RegionError` for unknown names.
    open_eyes: drop the cornea part of the sclera, give the pupils a material of their own and let
        the ``eyeLook*`` shapes turn the eyeballs (:mod:`facecast.recon.model.eyes`), so that the iris
        shows and follows the gaze in viewers that draw the sclera opaque.
    """
    import torch

    from facecast.recon.model.eyes import PUPIL_MATERIAL, eye_layout, gaze_deltas

    if not model.is_full:
        raise ValueError("build_avatar needs the full model, not a vertex subset")
    identity = np.asarray(identity, dtype=np.float64)
    if identity.shape != (N_IDENTITY,):
        raise ValueError(f"identity must have shape ({N_IDENTITY},), got {identity.shape}")
    data = model.data
    chosen = expand_regions(regions)
    mask = data.region_face_mask(chosen)
    names = list(data.material_names)
    face_material = data.face_material.astype(np.int64)
    open_eyes = open_eyes and "eyeballs" in chosen
    if open_eyes:
        eyes = eye_layout(data)
        mask &= ~eyes.cornea
        face_material = np.where(eyes.pupil, len(names), face_material)
        names.append(PUPIL_MATERIAL)
    polygons, vertex_ids = compact_indices(data.face_vertices[mask])
    face_uvs, uv_ids = compact_indices(data.face_uvs[mask])
    materials = face_material[mask]
    used_materials = np.unique(materials)
    all_regions = list(REGION_STARTS)
    region_of = np.array([chosen.index(r) if r in chosen else -1 for r in all_regions])
    with torch.no_grad():
        dtype = model.neutral.dtype
        coefficients = torch.as_tensor(identity, dtype=dtype)[None]
        vertices = model(coefficients, torch.zeros(1, model.expression_basis.shape[0], dtype=dtype)).vertices[0]
        ids = torch.as_tensor(vertex_ids, device=vertices.device)
        positions = vertices[ids].cpu().numpy().astype(np.float32)
        deltas = model.expression_basis[:, ids].cpu().numpy().astype(np.float32)
    if open_eyes:  # the gaze shapes turn the eyeballs too
        neutral = vertices.cpu().numpy().astype(np.float64)
        for name, delta in gaze_deltas(data, neutral).items():
            if name in model.expression_names:
                deltas[model.expression_names.index(name)] += delta[vertex_ids].astype(np.float32)
    return AvatarMesh(
        vertices=positions, polygons=polygons, uvs=data.uvs[uv_ids].astype(np.float32),
        face_uvs=face_uvs, face_material=np.searchsorted(used_materials, materials).astype(np.int32),
        material_names=tuple(names[int(k)] for k in used_materials),
        morph_deltas=deltas, morph_names=tuple(model.expression_names),
        face_region=region_of[data.face_region()[mask]].astype(np.int32),
        region_names=tuple(chosen), source_vertex_ids=vertex_ids,
    )


def random_identity(seed: int | None = None) -> np.ndarray:
    """``(100,)`` float64 weights ~ N(0, 0.8^2) clipped to +-2: a plausible, non-extreme face."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal(N_IDENTITY) * RANDOM_IDENTITY_SCALE
    return np.clip(weights, -RANDOM_IDENTITY_CLIP, RANDOM_IDENTITY_CLIP)


def load_identity(path: str | Path) -> np.ndarray:
    """``(100,)`` weights from a JSON file holding ``{"identity": [100 numbers]}``.

    Raises :class:`IdentityError` naming the file when it is unreadable, not that
    shape, or holds non-finite or implausible numbers (:data:`MAX_IDENTITY_WEIGHT`).
    """
    document = read_json_file(path, "identity file", IdentityError)
    values = document.get("identity") if isinstance(document, dict) else None
    return identity_weights(values, N_IDENTITY, f"identity file {path}", IdentityError)


def identity_from(spec: str | Path, seed: int | None = None) -> np.ndarray:
    """``(100,)`` weights from ``"random"`` (see :func:`random_identity`) or a JSON file path."""
    if str(spec) == "random":
        return random_identity(seed)
    return load_identity(spec)
