"""An avatar's morph targets under the 52 exact ARKit names, for apps that drive faces by them.

ICT's 53 shapes split ``browInnerUp`` and ``cheekPuff`` into left and right halves and have no
``tongueOut``. Apps that drive a face by ARKit names ("perfect sync" avatars, Live Link, MediaPipe
rigs) look for ``browInnerUp``, ``cheekPuff`` and ``tongueOut`` and leave them undriven otherwise. With
names ``arkit`` (the default of every GLB facecast writes) the targets are:

- the 52 ARKit shapes in Apple's order (:data:`~facecast.recon.model.arkit.ARKIT_52`);
- ``browInnerUp`` / ``cheekPuff``: the sum of the two ICT halves (at weight 1 both halves move fully;
  an animation's weight for them is the mean of the halves', so a symmetric pose is reproduced exactly
  and an asymmetric one becomes its symmetric mean);
- ``tongueOut``: made from the ICT tongue (:mod:`facecast.recon.model.tongue`).

Names ``ict`` keeps the 53 ICT shapes (``browInnerUpLeft`` ...), for tools written against ICT.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from facecast.pipelines.export.avatar import AvatarMesh
from facecast.recon.model.arkit import ARKIT_52, arkit_matrix
from facecast.recon.model.tongue import tongue_out_delta, tongue_vertices

NAMES = ("arkit", "ict")


def check_names(names: str) -> str:
    if names not in NAMES:
        raise ValueError(f"names must be 'arkit' or 'ict', got {names!r}")
    return names


def weight_matrix(morph_names: tuple[str, ...]) -> np.ndarray:
    """``(52, K)``: ARKit weights ``= weights @ M.T`` for an avatar's K channel names (a split pair's
    halves average; ``tongueOut``, which no ICT channel drives, stays 0)."""
    return arkit_matrix(list(morph_names))


def _vertex_regions(mesh: AvatarMesh) -> np.ndarray:
    """``(N,)`` the region index of each vertex (from the polygons using it; -1 where none does)."""
    out = np.full(mesh.n_vertices, -1, dtype=np.int64)
    for column in range(4):
        used = mesh.polygons[:, column] >= 0
        out[mesh.polygons[used, column]] = mesh.face_region[used]
    return out


def tongue_out(mesh: AvatarMesh) -> np.ndarray:
    """``(N, 3)`` cm: the avatar's ``tongueOut`` offsets (zero when it has no mouth region)."""
    if "gums_tongue" not in mesh.region_names or "jawOpen" not in mesh.morph_names:
        return np.zeros(mesh.vertices.shape, dtype=np.float64)
    in_part = _vertex_regions(mesh) == mesh.region_names.index("gums_tongue")
    jaw = mesh.morph_deltas[mesh.morph_names.index("jawOpen")]
    return tongue_out_delta(mesh.vertices, tongue_vertices(mesh.vertices, jaw, mesh.polygons, mesh.face_uvs, in_part))


def converts(morph_names: tuple[str, ...]) -> bool:
    """Whether :func:`with_arkit_names` changes a mesh with ``morph_names``: they are facecast's ICT
    channels (each maps onto an ARKit shape), not already the 52 ARKit shapes."""
    if tuple(morph_names) == ARKIT_52 or not morph_names:
        return False
    try:
        weight_matrix(tuple(morph_names))
    except ValueError:
        return False
    return True


def with_arkit_names(mesh: AvatarMesh) -> AvatarMesh:
    """``mesh`` with its morphs as the 52 ARKit shapes (see the module doc); a mesh whose morphs are
    not facecast's ICT channels (:func:`converts`) is returned as it is."""
    if not converts(mesh.morph_names):
        return mesh
    matrix = weight_matrix(mesh.morph_names)
    sums = (matrix > 0).astype(np.float32)  # a split pair's deltas add up; each other shape is its own
    deltas = np.einsum("ak,knd->and", sums, mesh.morph_deltas).astype(np.float32)
    deltas[ARKIT_52.index("tongueOut")] = tongue_out(mesh).astype(np.float32)
    return replace(mesh, morph_deltas=deltas, morph_names=ARKIT_52)


def arkit_weights(weights: np.ndarray, morph_names: tuple[str, ...]) -> np.ndarray:
    """Channel weights ``(T, K)`` of a mesh with ``morph_names`` -> ``(T, 52)`` for its
    :func:`with_arkit_names` targets (unchanged when that does not convert)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(morph_names):
        raise ValueError(f"weights must have shape (T, {len(morph_names)}), got {weights.shape}")
    return weights @ weight_matrix(tuple(morph_names)).T if converts(morph_names) else weights
