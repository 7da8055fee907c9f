"""Generic glTF rigs: any GLB/glTF whose meshes carry ARKit-named morph targets.

:class:`GltfRig` maps facecast's C = 53 channels (:func:`~facecast.transfer.rigs.channel_names`)
to the targets of every instanced mesh whose target names match ARKit shapes
(:func:`~facecast.transfer.rigs.match_target_name`), keeps unmatched targets at their
default weight and warns (:class:`~facecast.transfer.rigs.RigWarning`) about what it
cannot use. :func:`~facecast.transfer.rig_loader.load_rig` picks it for glTF files that are not VRM.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facecast.recon.model.arkit import ARKIT_52
from facecast.transfer.rigs import (
    N_CHANNELS,
    NodePose,
    RigMesh,
    RigWarning,
    check_channels,
    local_matrix,
    match_target_name,
    mesh_target_names,
    node_pose,
    parent_matrix,
    parent_of,
    parent_rotation,
    read_document,
    target_row,
)


@dataclass(frozen=True)
class GltfRig:
    """A glTF/GLB rig with ARKit-named morph targets.

    matrices[m]: ``(K_m, 53)`` channel -> target weights of ``meshes[m]``; rest[m]:
    ``(K_m,)`` the mesh's default weights for unmatched targets (0 for matched ones).
    unknown_targets / missing_arkit: what :meth:`from_document` warned about.
    """

    source: str
    meshes: tuple[RigMesh, ...]
    matrices: tuple[np.ndarray, ...]
    rest: tuple[np.ndarray, ...]
    head_node: int | None
    head_pose: NodePose
    facing: str = "+z"
    unknown_targets: tuple[str, ...] = ()
    missing_arkit: tuple[str, ...] = ()
    companions: tuple[tuple[int, NodePose], ...] = ()  # nodes beside the head that move rigidly with it
    #: the companions that are the subject's left and right eye (named ``*eye*``), turned by the
    #: driver's gaze when the rig has no ``eyeLook*`` targets; None where there is none
    eyes: tuple[int | None, int | None] = (None, None)

    def evaluate(self, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """Channels ``(T, 53)`` -> one ``(T, K_m)`` per mesh."""
        array = check_channels(weights)
        return tuple(array @ matrix.T + rest for matrix, rest in zip(self.matrices, self.rest))

    @classmethod
    def load(cls, path: str | Path, head_node: str | int | None = None, facing: str = "+z") -> GltfRig:
        """Read a ``.glb``/``.gltf`` file; see :meth:`from_document`."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls.from_document(read_document(data, str(path)), str(path), head_node, facing)

    @classmethod
    def from_document(cls, document: dict, source: str, head_node: str | int | None = None,
                      facing: str = "+z") -> GltfRig:
        """Match every instanced mesh's target names; warn (:class:`RigWarning`) about the rest.

        head_node: a node name or index for the head pose; default: the node holding the
        mesh with most matched targets (for a skinned mesh, its joint named ``head``).
        Raises ``ValueError`` naming ``source`` when no mesh has a usable target.
        """
        meshes, matrices, rests, unknown, ignored = _match_meshes(document)
        if not meshes:
            raise ValueError(f"{source}: no mesh has morph targets named after ARKit blendshapes "
                             "(mesh extras.targetNames such as 'jawOpen' or 'blendShape1.eyeBlinkLeft')")
        covered = {_arkit_of(m) for mesh in meshes for m in map(match_target_name, mesh.target_names) if m}
        missing = tuple(n for n in ARKIT_52 if n not in covered and n != "tongueOut")   # never driven
        _warn_unused(source, unknown, missing, ignored)
        node = _head_node(document, source, head_node, meshes)
        pose, companions, eyes = NodePose(), (), (None, None)
        if node is not None:
            pose, companions = _head_parts(document, node)
            if not any(name.startswith("eyeLook") for name in covered):
                eyes = _eye_nodes(document, companions)
        return cls(source, tuple(meshes), tuple(matrices), tuple(rests), node, pose, _check_facing(facing),
                   tuple(unknown), missing, companions, eyes)


def _match_meshes(document: dict) -> tuple[list, list, list, list[str], list[str]]:
    """Per usable mesh: RigMesh, ``(K, 53)`` matrix, ``(K,)`` rest weights; plus the unknown
    target names of those meshes and a description of each ignored mesh with targets."""
    meshes, matrices, rests, unknown, ignored = [], [], [], [], []
    for index in _instanced_meshes(document):
        mesh = document["meshes"][index]
        names = mesh_target_names(mesh)
        matched = [match_target_name(n) for n in names or []]
        if not any(matched):
            count = len((mesh.get("primitives") or [{}])[0].get("targets") or [])
            if count:
                label = mesh.get("name", f"mesh {index}")
                ignored.append(f"{label} ({', '.join(names) if names else f'{count} unnamed targets'})")
            continue
        defaults = np.asarray(mesh.get("weights") or [0.0] * len(names), dtype=np.float64)
        matrices.append(np.stack([target_row(m) if m else np.zeros(N_CHANNELS) for m in matched]))
        rests.append(np.where([m is None for m in matched], defaults, 0.0))
        meshes.append(RigMesh(index, tuple(names)))
        unknown += [n for n, m in zip(names, matched) if m is None]
    return meshes, matrices, rests, unknown, ignored


def _arkit_of(target: str) -> str:
    return target if target in ARKIT_52 else target.removesuffix("Left").removesuffix("Right")


def _check_facing(facing: str) -> str:
    if facing not in ("+z", "-z"):
        raise ValueError(f"facing must be '+z' or '-z', got {facing!r}")
    return facing


def _warn_unused(source: str, unknown: list[str], missing: tuple[str, ...], ignored: list[str]) -> None:
    parts = [f"meshes with no ARKit-named target are ignored: {'; '.join(ignored)}"] if ignored else []
    if unknown:
        parts.append(f"{len(unknown)} morph targets match no ARKit name and keep their default "
                     f"weight: {', '.join(unknown)}")
    if missing:
        parts.append(f"the rig lacks {len(missing)} ARKit shapes, whose weights are dropped: "
                     f"{', '.join(missing)}")
    if parts:
        warnings.warn(f"{source}: " + "; ".join(parts), RigWarning, stacklevel=3)


def _instanced_meshes(document: dict) -> list[int]:
    """Indices of meshes that some node holds, in mesh order."""
    used = {node["mesh"] for node in document.get("nodes", []) if "mesh" in node}
    return sorted(m for m in used if 0 <= m < len(document.get("meshes", [])))


def _head_node(document: dict, source: str, wanted: str | int | None,
               meshes: list[RigMesh]) -> int | None:
    """The node taking the head pose (see :meth:`GltfRig.from_document`)."""
    nodes = document.get("nodes", [])
    if isinstance(wanted, int):
        if not 0 <= wanted < len(nodes):
            raise ValueError(f"{source}: head node {wanted} out of range (the file has {len(nodes)} nodes)")
        return wanted
    if wanted is not None:
        for index, node in enumerate(nodes):
            if node.get("name") == wanted:
                return index
        names = [n.get("name") for n in nodes if n.get("name")]
        raise ValueError(f"{source}: no node named {wanted!r}; nodes: {', '.join(names)}")
    best = max(meshes, key=lambda m: sum(match_target_name(n) is not None for n in m.target_names))
    face = next(k for k, node in enumerate(nodes) if node.get("mesh") == best.mesh)
    if "skin" not in nodes[face]:
        return face
    joints = document["skins"][nodes[face]["skin"]].get("joints", [])
    heads = [j for j in joints if str(nodes[j].get("name", "")).lower().split(":")[-1].endswith("head")]
    if heads:
        return heads[0]
    warnings.warn(f"{source}: the face mesh is skinned and no joint is named 'head'; the head pose "
                  "is not transferred (name a head node to fix this)", RigWarning, stacklevel=4)
    return None


def _head_parts(document: dict, node: int) -> tuple[NodePose, tuple[tuple[int, NodePose], ...]]:
    """The head node's pose (with its parent's rotation and, when it holds a mesh, the pivot: the bottom
    centre of the mesh's box, where a neck would be) and the nodes beside it whose meshes lie in that
    box (eyes, teeth, tongue, lashes exported as meshes of their own), which turn with it."""
    nodes = document["nodes"]
    parent = parent_matrix(document, node)
    pose = replace(node_pose(nodes[node]), parent_rotation=parent_rotation(document, node))
    box = _world_box(document, node, parent)
    if box is None:
        return pose, ()
    low, high = box
    pivot_world = np.array([(low[0] + high[0]) / 2, low[1], (low[2] + high[2]) / 2, 1.0])
    pivot = (np.linalg.inv(parent) @ pivot_world)[:3]
    pose = replace(pose, pivot=pivot)
    margin = 0.1 * (high - low)
    mother = parent_of(document, node)
    companions = []
    for k, other in enumerate(nodes):
        if k == node or "mesh" not in other or parent_of(document, k) != mother:
            continue
        inner = _world_box(document, k, parent)
        if inner is not None and np.all((inner[0] + inner[1]) / 2 >= low - margin) \
                and np.all((inner[0] + inner[1]) / 2 <= high + margin):
            companions.append((k, replace(node_pose(other), parent_rotation=pose.parent_rotation, pivot=pivot)))
    return pose, tuple(companions)


def _world_box(document: dict, node: int, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """World-space box ``(low (3,), high (3,))`` of the mesh ``node`` holds, from its POSITION bounds
    (``parent``: the world matrix of the node's parent); None without a mesh or bounds."""
    mesh = document["nodes"][node].get("mesh")
    if not isinstance(mesh, int) or not 0 <= mesh < len(document.get("meshes", [])):
        return None
    accessors = document.get("accessors", [])
    lows, highs = [], []
    for primitive in document["meshes"][mesh].get("primitives", []):
        index = (primitive.get("attributes") or {}).get("POSITION")
        if isinstance(index, int) and 0 <= index < len(accessors) and "min" in accessors[index]:
            lows.append(_dequantised(accessors[index], "min"))
            highs.append(_dequantised(accessors[index], "max"))
    if not lows:
        return None
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    corners = np.array([[x, y, z, 1.0] for x in (low[0], high[0]) for y in (low[1], high[1])
                        for z in (low[2], high[2])])
    world = (parent @ local_matrix(node_pose(document["nodes"][node])) @ corners.T).T[:, :3]
    return world.min(0), world.max(0)


#: the largest value of each integer component type: a normalised accessor's values divided by it
NORMALISED = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}


def _dequantised(accessor: dict, bound: str) -> np.ndarray:
    """``(3,)`` an accessor's ``min`` / ``max`` as positions: normalised integers (``KHR_mesh_quantization``,
    which meshopt-compressed files use) divided as glTF says; the node's transform does the rest."""
    value = np.asarray(accessor[bound][:3], dtype=np.float64)
    if accessor.get("normalized") and accessor.get("componentType") in NORMALISED:
        return np.maximum(value / NORMALISED[accessor["componentType"]], -1.0)
    return value


def _eye_nodes(document: dict, companions: tuple) -> tuple[int | None, int | None]:
    """``(left, right)``: the companion nodes named like an eye (node or mesh name holding ``eye``, not a
    lash, lid or brow), the subject's left being the one further towards +x."""
    nodes, meshes = document["nodes"], document.get("meshes", [])
    found = []
    for k, _ in companions:
        mesh = nodes[k].get("mesh")
        label = f"{nodes[k].get('name', '')} {meshes[mesh].get('name', '') if isinstance(mesh, int) else ''}".lower()
        if "eye" in label and not any(word in label for word in ("lash", "lid", "brow")):
            box = _world_box(document, k, parent_matrix(document, k))
            if box is not None:
                found.append(((box[0][0] + box[1][0]) / 2, k))
    if len(found) != 2:
        return None, None
    (_, right), (_, left) = sorted(found)
    return left, right
