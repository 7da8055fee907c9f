"""Target rigs: what retargeted expression weights drive.

Every rig takes facecast's C = 53 expression channels (:func:`channel_names`, the
order of ``MorphableModel.expression_names``: ARKit order, ``browInnerUp`` and
``cheekPuff`` split into Left/Right halves, no ``tongueOut``) and returns morph
target weights for some meshes of a glTF document (:meth:`Rig.evaluate`):

- :class:`IctRig` — an ICT avatar of one identity, as ``export_glb`` writes it: mesh 0
  with the 53 channels as targets, node 0 holding it. The weights pass unchanged.
- :class:`GltfRig` — any GLB/glTF whose meshes carry ARKit-named morph targets.
- :class:`~facecast.transfer.vrm.VrmRig` — VRM 0.x / 1.0 avatars driven through their
  expression presets (see :mod:`facecast.transfer.vrm`).

:func:`load_rig` picks the rig by file content. glTF documents are read as plain JSON
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
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from facecast.recon.arkit import ARKIT_52, SPLIT_SHAPES, arkit_matrix, camel_from_ict

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
    """A node's rest transform: translation ``(3,)``, rotation ``(4,)`` xyzw, scale ``(3,)``."""

    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    scale: np.ndarray = field(default_factory=lambda: np.ones(3))


def node_pose(node: dict) -> NodePose:
    """The TRS of a glTF node dict; a ``matrix`` is decomposed (``ValueError`` if it mirrors)."""
    if "matrix" in node:
        matrix = np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T   # column-major
        scale = np.linalg.norm(matrix[:3, :3], axis=0)
        if np.linalg.det(matrix[:3, :3]) <= 0 or (scale < 1e-12).any():
            raise ValueError(f"node {node.get('name', '')!r}: its matrix mirrors or collapses space; "
                             "it cannot be split into translation, rotation and scale")
        rotation = Rotation.from_matrix(matrix[:3, :3] / scale).as_quat()
        return NodePose(matrix[:3, 3].copy(), rotation, scale)
    return NodePose(np.asarray(node.get("translation", [0, 0, 0]), dtype=np.float64),
                    np.asarray(node.get("rotation", [0, 0, 0, 1]), dtype=np.float64),
                    np.asarray(node.get("scale", [1, 1, 1]), dtype=np.float64))


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
        return identity_rig(_read_json(Path(path)), str(path))


def identity_rig(document: object, source: str) -> IctRig:
    """:class:`IctRig` from parsed coefficient JSON (see :meth:`IctRig.from_coefficients`)."""
    record = document[0] if isinstance(document, list) and document else document
    values = record.get("identity") if isinstance(record, dict) else None
    if not isinstance(values, list) or len(values) != N_IDENTITY:
        raise ValueError(f"{source}: expected coefficient records with an 'identity' of "
                         f"{N_IDENTITY} numbers (FaceCoeffs.to_json output)")
    try:
        return IctRig(np.asarray(values, dtype=np.float64), source=source)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: identity must be {N_IDENTITY} finite numbers ({exc})") from exc


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is neither a GLB nor valid JSON ({exc})") from exc


def read_document(data: bytes, source: str) -> dict:
    """The JSON of a GLB (its first chunk) or of a ``.gltf`` file, as a dict."""
    if data[:4] == b"glTF":
        if len(data) < 20:
            raise ValueError(f"{source}: truncated GLB")
        length, kind = struct.unpack_from("<II", data, 12)
        if kind != 0x4E4F534A or 20 + length > len(data):
            raise ValueError(f"{source}: GLB does not start with a JSON chunk")
        data = data[20:20 + length]
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source} is neither a GLB nor valid glTF JSON ({exc})") from exc
    if not isinstance(document, dict) or "asset" not in document:
        raise ValueError(f"{source}: not a glTF document (no 'asset')")
    return document


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
        pose = node_pose(document["nodes"][node]) if node is not None else NodePose()
        return cls(source, tuple(meshes), tuple(matrices), tuple(rests), node, pose, _check_facing(facing),
                   tuple(unknown), missing)


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


def load_rig(path: str | Path, head_node: str | int | None = None,
             vrm_mapping: str | Path | None = None) -> Rig:
    """The rig of a file, chosen by content, not by extension.

    GLB / glTF JSON with a ``VRM`` or ``VRMC_vrm`` extension -> ``VrmRig`` (``vrm_mapping``:
    optional override file); other GLB / glTF -> :class:`GltfRig`; JSON coefficient
    records -> :class:`IctRig`. ``ValueError`` naming the file otherwise.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if data[:4] != b"glTF":
        parsed = _read_json(path)
        if not (isinstance(parsed, dict) and "asset" in parsed):
            return identity_rig(parsed, str(path))
    document = read_document(data, str(path))
    extensions = document.get("extensions") or {}
    if "VRM" in extensions or "VRMC_vrm" in extensions:
        from facecast.transfer.vrm import VrmRig

        return VrmRig.from_document(document, str(path), vrm_mapping)
    if vrm_mapping is not None:
        raise ValueError(f"{path} is not a VRM file; a VRM mapping does not apply to it")
    return GltfRig.from_document(document, str(path), head_node)
