"""A ``tongueOut`` shape for the ICT head, which has a tongue but no shape that moves it.

ICT models the gums and the tongue as one connected part (``gums_tongue``), but paints them from
separate islands of its UV layout. The tongue is the islands of that part that the jaw carries
(``jawOpen`` moves them) and that are narrower than the dental arch: the tongue's top and its
underside. The shape slides the front of the tongue forward, a little down and wider (ICT's tongue
tapers to a point behind the incisors; out of the mouth a tongue is flat and broad), fading to
nothing towards the root, as ARKit's ``tongueOut`` does (the jaw is driven on its own).
"""

from __future__ import annotations

import numpy as np

#: cm: the jaw moves the lower mouth by up to ~4 cm under jawOpen; the upper mouth it moves not at all
JAW_CARRIED = 1.0
#: cm: UV islands of the part narrower than this half-width about the midline are the tongue's
TONGUE_HALF_WIDTH = 2.2
#: cm: the front of the tongue moves fully this far back from the tip, fading out over the next FADE
FRONT, FADE = 2.5, 3.0
#: cm: how far the tongue slides forward (+z) and down (-y) at weight 1; how much wider it gets
REACH, DROP, WIDEN = 3.2, 0.9, 0.3


def _smoothstep(value: np.ndarray, low: float, high: float) -> np.ndarray:
    t = np.clip((value - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _uv_islands(face_uvs: np.ndarray, n_uvs: int) -> np.ndarray:
    """``(n_uvs,)`` the island (connected component of the UV graph) of each texture coordinate."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    corners = face_uvs.shape[1]
    start, end = [], []
    for k in range(corners):
        a, b = face_uvs[:, k], face_uvs[:, (k + 1) % corners]
        b = np.where(b < 0, face_uvs[:, 0], b)  # a triangle's last corner closes on its first
        ok = (a >= 0) & (b >= 0)
        start.append(a[ok])
        end.append(b[ok])
    start, end = np.concatenate(start), np.concatenate(end)
    graph = coo_matrix((np.ones(len(start)), (start, end)), shape=(n_uvs, n_uvs))
    return connected_components(graph, directed=False)[1]


def tongue_vertices(positions: np.ndarray, jaw_open: np.ndarray, polygons: np.ndarray, face_uvs: np.ndarray,
                    in_part: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: the tongue's vertices (see the module doc).

    positions: ``(N, 3)`` cm, the neutral head; jaw_open: ``(N, 3)`` cm, the jawOpen offsets;
    polygons / face_uvs: ``(F, 4)`` vertex / UV indices, ``-1`` padding triangles; in_part: ``(N,)``
    bool, the ``gums_tongue`` vertices. All False when the mesh has no such part (a face-only avatar).
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    polygons, face_uvs = np.asarray(polygons), np.asarray(face_uvs)
    for name, array, shape in (("jaw_open", jaw_open, (n, 3)), ("in_part", in_part, (n,)),
                               ("face_uvs", face_uvs, polygons.shape)):
        if np.shape(array) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(array)}")
    in_part = np.asarray(in_part, bool)
    out = np.zeros(n, bool)
    faces = np.flatnonzero(np.all(np.where(polygons >= 0, in_part[np.maximum(polygons, 0)], True), axis=1))
    if len(faces) == 0:
        return out
    islands = _uv_islands(face_uvs[faces], int(face_uvs.max()) + 1)
    face_island = islands[face_uvs[faces, 0]]
    midline = np.median(positions[in_part, 0])
    moved = np.linalg.norm(np.asarray(jaw_open, np.float64), axis=1)
    for island in np.unique(face_island):
        corners = polygons[faces[face_island == island]]
        vertices = np.unique(corners[corners >= 0])
        if (np.median(moved[vertices]) > JAW_CARRIED
                and np.abs(positions[vertices, 0] - midline).max() < TONGUE_HALF_WIDTH):
            out[vertices] = True
    return out


def tongue_out_delta(positions: np.ndarray, tongue: np.ndarray) -> np.ndarray:
    """``(N, 3)`` cm: the ``tongueOut`` offsets of a head ``positions (N, 3)`` whose ``tongue (N,)``
    vertices are given (:func:`tongue_vertices`); zero elsewhere, and everywhere without a tongue."""
    positions = np.asarray(positions, dtype=np.float64)
    tongue = np.asarray(tongue, bool)
    if tongue.shape != (len(positions),):
        raise ValueError(f"tongue must have shape ({len(positions)},), got {tongue.shape}")
    delta = np.zeros_like(positions)
    if not tongue.any():
        return delta
    tip = positions[tongue, 2].max()
    weights = np.where(tongue, _smoothstep(positions[:, 2], tip - FRONT - FADE, tip - FRONT), 0.0)
    midline = np.median(positions[tongue, 0])
    delta[:, 0] = WIDEN * (positions[:, 0] - midline) * weights
    delta[:, 1] = -DROP * weights
    delta[:, 2] = REACH * weights
    return delta
