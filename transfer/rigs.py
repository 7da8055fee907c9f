"""Target rigs: what retargeted expression weights drive.

Every rig takes facecast's C = 53 expression channels (:func:`channel_names`, the
order of ``MorphableModel.expression_names``: ARKit order, ``browInnerUp`` and
``cheekPuff`` split into Left/Right halves, no ``tongueOut``) and returns morph
target weights for some meshes of a glTF document (:meth:`Rig.evaluate`):

- :class:`IctRig` — an ICT avatar of one identity, as ``export_glb`` writes it: mesh 0
  with the 53 channels as targets, node 0 holding it. The weights pass unchanged.
- :class:`~facecast.transfer.gltf_rig.GltfRig` — any GLB/glTF whose meshes carry ARKit-named
  morph targets (see :mod:`facecast.transfer.gltf_rig`).
- :class:`~facecast.transfer.vrm.VrmRig` — VRM 0.x / 1.0 avatars driven through their
  expression presets (see :mod:`facecast.transfer.vrm`).

:func:`facecast.transfer.rig_loader.load_rig` picks the rig by file content. glTF documents are read as plain JSON
dicts (the binary chunk is not needed here).

Target names are matched to ARKit names by :func:`match_target_name`: case-insensitive,
after the part up to the last ``.``/``:``/``|`` (``blendShape1.jawOpen``) and the prefixes
``BS_``, ``ARKit_``, ``facial_`` are dropped; ICT-style ``_L``/``_R`` suffixes and our
split halves (``browInnerUpLeft``) are understood too. A ``tongueOut`` target is matched but
stays 0 (the ICT model has no tongue shape), and a rig without one is not warned about.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from facecast.recon.model.arkit import ARKIT_52, SPLIT_SHAPES, arkit_matrix, camel_from_ict
from facecast.transfer.glb import read_glb
from facecast.transfer.gltf_schema import check_gltf
from facecast.transfer.json_files import identity_weights, read_json_file

N_CHANNELS = 53
N_IDENTITY = 100
_PREFIXES = ("bs_", "arkit_", "facial_")
_SEPARATORS = re.compile(r"[.:|]")


class RigWarning(UserWarning):
    """Targets or shapes a rig cannot use; the message lists them."""


def channel_names() -> tuple[str, ...]:
    """The 53 facecast channels in order (equal to ``MorphableModel.expression_names``)."""
    names: list[str] = []
    for shape in ARKIT_52:
        if shape in SPLIT_SHAPES:
            names += [shape + "Left", shape + "Right"]
        elif shape != "tongueOut":
            names.append(shape)
    return tuple(names)


def arkit_channel_matrix() -> np.ndarray:
    """``(52, 53)`` matrix A with ``arkit = channels @ A.T`` (split halves averaged)."""
    return arkit_matrix(list(channel_names()))


def check_channels(weights: np.ndarray, name: str = "weights") -> np.ndarray:
    """``weights`` as float64 ``(T, 53)``; ``ValueError`` for another shape or non-finite values."""
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != N_CHANNELS:
        raise ValueError(f"{name} must have shape (T, {N_CHANNELS}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values")
    return array


def match_target_name(name: str) -> str | None:
    """The ARKit shape or facecast channel a morph target name stands for, or ``None``.

    ``blendShape1.jawOpen`` -> ``jawOpen``; ``BS_EyeBlink_L`` -> ``eyeBlinkLeft``;
    ``browInnerUpLeft`` -> ``browInnerUpLeft`` (a split half); ``Wrinkle`` -> None.
    """
    base = _SEPARATORS.split(str(name))[-1].strip()
    lowered = base.lower()
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if lowered.startswith(prefix) and len(lowered) > len(prefix):
                lowered, stripped = lowered[len(prefix):], True
    if lowered.endswith(("_l", "_r")):
        lowered = camel_from_ict(lowered[:-2] + lowered[-2:].upper()).lower()
    return _known_names().get(lowered)


def _known_names() -> dict[str, str]:
    known = {name.lower(): name for name in ARKIT_52}
    known.update({name.lower(): name for name in channel_names()})
    return known


def target_row(target: str) -> np.ndarray:
    """``(53,)`` channel weights driving a matched target (:func:`match_target_name`)."""
    channels = channel_names()
    if target in channels and target not in ARKIT_52:          # a split half
        row = np.zeros(N_CHANNELS)
        row[channels.index(target)] = 1.0
        return row
    return arkit_channel_matrix()[ARKIT_52.index(target)]


@dataclass(frozen=True)
class NodePose:
    """A node's rest transform: translation ``(3,)``, rotation ``(4,)`` xyzw, scale ``(3,)``; and
    ``parent_rotation`` ``(4,)`` xyzw, the world rotation of its parent at rest (identity for a root)."""

    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    scale: np.ndarray = field(default_factory=lambda: np.ones(3))
    parent_rotation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    pivot: np.ndarray | None = None  # (3,) where the head turns, in the parent's frame; None: the origin


def local_matrix(pose: NodePose) -> np.ndarray:
    """``(4, 4)`` the node's local transform ``T R S``."""
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(pose.rotation).as_matrix() * pose.scale
    out[:3, 3] = pose.translation
    return out


def parent_of(document: dict, node: int) -> int | None:
    """The index of the node whose ``children`` hold ``node``, or None for a root."""
    return next((k for k, n in enumerate(document.get("nodes", [])) if node in n.get("children", [])), None)


def parent_matrix(document: dict, node: int) -> np.ndarray:
    """``(4, 4)`` the world transform at rest of ``node``'s parent (the product of its ancestors')."""
    nodes = document.get("nodes", [])
    total, seen, current = np.eye(4), {node}, parent_of(document, node)
    while current is not None and current not in seen:  # a malformed loop stops the walk
        seen.add(current)
        total = local_matrix(node_pose(nodes[current])) @ total
        current = parent_of(document, current)
    return total


def parent_rotation(document: dict, node: int) -> np.ndarray:
    """``(4,)`` xyzw: the world rotation at rest of ``node``'s parent."""
    linear = parent_matrix(document, node)[:3, :3]
    return Rotation.from_matrix(linear / np.linalg.norm(linear, axis=0)).as_quat()


def node_pose(node: dict) -> NodePose:
    """The TRS of a glTF node dict; a ``matrix`` is decomposed.

    ``ValueError`` naming the node when a value is not finite, has the wrong length, the rotation is not a
    unit quaternion (a zero or non-finite one has no direction; others are normalised) or the matrix or a
    scale mirrors or collapses space.
    """
    name = node.get("name", "")
    if "matrix" in node:
        matrix = _floats(node, "matrix", 16).reshape(4, 4).T   # column-major
        scale = np.linalg.norm(matrix[:3, :3], axis=0)
        if np.linalg.det(matrix[:3, :3]) <= 0 or (scale < 1e-12).any():
            raise ValueError(f"node {name!r}: its matrix mirrors or collapses space; "
                             "it cannot be split into translation, rotation and scale")
        rotation = Rotation.from_matrix(matrix[:3, :3] / scale).as_quat()
        return NodePose(matrix[:3, 3].copy(), rotation, scale)
    rotation = _floats(node, "rotation", 4, (0.0, 0.0, 0.0, 1.0))
    norm = float(np.linalg.norm(rotation))
    if not 1e-6 < norm < 1e6:
        raise ValueError(f"node {name!r}: its rotation {rotation.tolist()} is not a unit quaternion")
    scale = _floats(node, "scale", 3, (1.0, 1.0, 1.0))
    if (np.abs(scale) < 1e-12).any():
        raise ValueError(f"node {name!r}: its scale {scale.tolist()} collapses space")
    return NodePose(_floats(node, "translation", 3, (0.0, 0.0, 0.0)), rotation / norm, scale)


def _floats(node: dict, key: str, count: int, default: tuple[float, ...] | None = None) -> np.ndarray:
    """``(count,)`` float64 of ``node[key]`` (or ``default``); ``ValueError`` unless ``count`` finite numbers."""
    value = node.get(key, default)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        array = np.empty(0)
    if array.shape != (count,) or not np.isfinite(array).all() or np.abs(array).max(initial=0) > 1e15:
        raise ValueError(f"node {node.get('name', '')!r}: {key} must be {count} finite numbers, got {value!r:.80}")
    return array


@dataclass(frozen=True)
class RigMesh:
    """Mesh ``mesh`` (index in the glTF document) and the names of its K morph targets."""

    mesh: int
    target_names: tuple[str, ...]


class Rig(Protocol):
    """What :func:`~facecast.transfer.retarget.retarget` needs from a target.

    meshes: the driven meshes; head_node: the node that takes the head pose (or None);
    head_pose: its rest transform; facing: ``"+z"`` or ``"-z"``, where the face looks
    in the rig's model space (glTF: +z; VRM 0.x: -z).
    """

    meshes: tuple[RigMesh, ...]
    head_node: int | None
    head_pose: NodePose
    facing: str

    def evaluate(self, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """Channels ``(T, 53)`` -> one ``(T, K_m)`` array of morph weights per mesh."""
        ...


@dataclass(frozen=True)
class IctRig:
    """An ICT avatar of ``identity`` ``(100,)`` as exported by ``export_glb``."""

    identity: np.ndarray
    source: str = ""
    head_node: int | None = 0
    head_pose: NodePose = field(default_factory=NodePose)
    facing: str = "+z"

    def __post_init__(self) -> None:
        identity = np.asarray(self.identity, dtype=np.float64)
        if identity.shape != (N_IDENTITY,) or not np.isfinite(identity).all():
            raise ValueError(f"identity must be a finite ({N_IDENTITY},) vector, got {identity.shape}")
        object.__setattr__(self, "identity", identity)

    @property
    def meshes(self) -> tuple[RigMesh, ...]:
        return (RigMesh(0, channel_names()),)

    def evaluate(self, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """Channels ``(T, 53)`` -> ``((T, 53),)``: the avatar's targets are the channels."""
        return (check_channels(weights).copy(),)

    @classmethod
    def from_coefficients(cls, path: str | Path) -> IctRig:
        """The identity of the first record of a coefficients JSON file.

        Accepts ``FaceCoeffs.to_json()`` output (a list of records with ``identity``) or a
        single ``{"identity": [100 numbers]}`` object.
        """
        return identity_rig(read_json_file(path, "coefficient file"), str(path))


def identity_rig(document: object, source: str) -> IctRig:
    """:class:`IctRig` from parsed coefficient JSON (see :meth:`IctRig.from_coefficients`)."""
    record = document[0] if isinstance(document, list) and document else document
    values = record.get("identity") if isinstance(record, dict) else None
    if not isinstance(values, list):
        raise ValueError(f"{source}: expected coefficient records with an 'identity' of "
                         f"{N_IDENTITY} numbers (FaceCoeffs.to_json output)")
    return IctRig(identity_weights(values, N_IDENTITY, source), source=source)


def read_document(data: bytes, source: str) -> dict:
    """The JSON of a GLB (its first chunk) or of a ``.gltf`` file, as a dict."""
    if data[:4] == b"glTF":
        try:
            document = read_glb(data).document
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    else:
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"{source} is neither a GLB nor valid glTF JSON ({exc})") from exc
    if not isinstance(document, dict) or "asset" not in document:
        raise ValueError(f"{source}: not a glTF document (no 'asset')")
    return check_gltf(document, source)


def mesh_target_names(mesh: dict) -> list[str] | None:
    """Morph target names of a glTF mesh dict, or None when it has no named targets.

    Looks in ``mesh.extras.targetNames`` (three.js, Babylon, the glTF-Blender exporter,
    facecast), then in the first primitive's ``extras.targetNames`` (UniGLTF and others).
    """
    primitives = mesh.get("primitives") or [{}]
    count = len(primitives[0].get("targets") or [])
    for holder in (mesh, *primitives):
        extras = holder.get("extras")
        names = extras.get("targetNames") if isinstance(extras, dict) else None
        if isinstance(names, list) and count and len(names) == count:
            return [str(n) for n in names]
    return None
