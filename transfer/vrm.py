"""VRM avatars as rigs: ARKit weights -> VRM expressions -> the morph targets they bind.

Both VRM generations are read from the glTF JSON:

- VRM 0.x: ``extensions.VRM.blendShapeMaster.blendShapeGroups``; each group has a
  ``presetName`` (``a i u e o blink blink_l blink_r joy angry sorrow fun lookup ...``,
  or ``unknown`` + a ``name`` for custom groups), ``binds`` ``{mesh, index, weight 0-100}``
  and ``isBinary``. The avatar faces -z.
- VRM 1.0: ``extensions.VRMC_vrm.expressions.preset`` / ``.custom``; each expression has
  ``morphTargetBinds`` ``{node, index, weight 0-1}`` and ``isBinary``. The avatar faces +z.

0.x preset names are translated to the 1.0 names (``a``->``aa``, ``joy``->``happy``,
``sorrow``->``sad``, ``fun``->``relaxed``, ``blink_l``->``blinkLeft``, ``lookup``->``lookUp``...).

Evaluation: ``expression = clip(arkit @ mapping.T, 0, 1)`` (binary expressions snap at
0.5), then ``morph weight = clip(sum of expression * bind weight, 0, 1)`` per bound target.
Material colour / texture binds are not animated (a warning names the expressions).

Default mapping (:func:`default_vrm_mapping`; ARKit name: weight)::

    aa         jawOpen 1
    ih         mouthStretchLeft .5, mouthStretchRight .5
    ou         mouthPucker 1
    ee         mouthLowerDownLeft .5, mouthLowerDownRight .5
    oh         mouthFunnel 1
    blinkLeft  eyeBlinkLeft 1
    blinkRight eyeBlinkRight 1
    blink      nothing, unless the model lacks blinkLeft and blinkRight:
               then eyeBlinkLeft .5, eyeBlinkRight .5
    happy      mouthSmileLeft .5, mouthSmileRight .5
    angry      browDownLeft .5, browDownRight .5
    sad        mouthFrownLeft .35, mouthFrownRight .35, browInnerUp .3
    surprised  eyeWideLeft .3, eyeWideRight .3, browInnerUp .4
    relaxed    nothing (no ARKit counterpart)
    lookUp     eyeLookUpLeft .5, eyeLookUpRight .5
    lookDown   eyeLookDownLeft .5, eyeLookDownRight .5
    lookLeft   eyeLookOutLeft .5, eyeLookInRight .5    (towards the avatar's left)
    lookRight  eyeLookInLeft .5, eyeLookOutRight .5
    neutral    nothing

"Perfect sync" models (custom expressions named after ARKit shapes, such as
``jawOpen``) get ``{that shape: 1}`` for each such expression and nothing for the presets,
which would drive the same features twice. A mapping file ``{expression: {arkitName:
weight}}`` (JSON, or YAML when PyYAML is installed) replaces the entries it names; ``{}``
switches an expression off.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.recon.model.arkit import ARKIT_52
from facecast.transfer.json_files import is_finite_number, read_json_file
from facecast.transfer.rigs import (
    NodePose,
    RigMesh,
    RigWarning,
    arkit_channel_matrix,
    check_channels,
    match_target_name,
    mesh_target_names,
    node_pose,
    read_document,
)

PRESETS: tuple[str, ...] = (
    "happy", "angry", "sad", "relaxed", "surprised", "aa", "ih", "ou", "ee", "oh", "blink",
    "blinkLeft", "blinkRight", "lookUp", "lookDown", "lookLeft", "lookRight", "neutral",
)
VRM0_NAMES: tuple[tuple[str, str], ...] = (
    ("a", "aa"), ("i", "ih"), ("u", "ou"), ("e", "ee"), ("o", "oh"), ("joy", "happy"),
    ("sorrow", "sad"), ("fun", "relaxed"), ("blink_l", "blinkLeft"), ("blink_r", "blinkRight"),
    ("lookup", "lookUp"), ("lookdown", "lookDown"), ("lookleft", "lookLeft"), ("lookright", "lookRight"),
)
_DEFAULT: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("aa", (("jawOpen", 1.0),)),
    ("ih", (("mouthStretchLeft", 0.5), ("mouthStretchRight", 0.5))),
    ("ou", (("mouthPucker", 1.0),)),
    ("ee", (("mouthLowerDownLeft", 0.5), ("mouthLowerDownRight", 0.5))),
    ("oh", (("mouthFunnel", 1.0),)),
    ("blinkLeft", (("eyeBlinkLeft", 1.0),)),
    ("blinkRight", (("eyeBlinkRight", 1.0),)),
    ("happy", (("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5))),
    ("angry", (("browDownLeft", 0.5), ("browDownRight", 0.5))),
    ("sad", (("mouthFrownLeft", 0.35), ("mouthFrownRight", 0.35), ("browInnerUp", 0.3))),
    ("surprised", (("eyeWideLeft", 0.3), ("eyeWideRight", 0.3), ("browInnerUp", 0.4))),
    ("lookUp", (("eyeLookUpLeft", 0.5), ("eyeLookUpRight", 0.5))),
    ("lookDown", (("eyeLookDownLeft", 0.5), ("eyeLookDownRight", 0.5))),
    ("lookLeft", (("eyeLookOutLeft", 0.5), ("eyeLookInRight", 0.5))),
    ("lookRight", (("eyeLookInLeft", 0.5), ("eyeLookOutRight", 0.5))),
)
_BLINK_FALLBACK = {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5}


def default_vrm_mapping() -> dict[str, dict[str, float]]:
    """A fresh copy of the default ``{expression: {arkitName: weight}}`` (see the module doc)."""
    return {name: dict(weights) for name, weights in _DEFAULT}


def canonical_expression(name: str) -> str:
    """VRM 1.0 name of a preset given in either generation's spelling; other names unchanged."""
    lowered = name.lower()
    for old, new in VRM0_NAMES:
        if lowered == old:
            return new
    for preset in PRESETS:
        if lowered == preset.lower():
            return preset
    return name


@dataclass(frozen=True)
class VrmExpression:
    """One VRM expression: ``binds`` are ``(mesh, morph target, weight in [0, 1])``."""

    name: str
    binds: tuple[tuple[int, int, float], ...]
    is_binary: bool = False
    custom: bool = False
    material_binds: bool = False

    def __post_init__(self) -> None:
        for _, _, weight in self.binds:
            if not (np.isfinite(weight) and -1.0 <= weight <= 1.0):
                raise ValueError(f"expression {self.name!r} binds a morph target with weight {weight:g} "
                                 "(VRM weights are 0-1, VRM 0 ones 0-100)")


def _vrm0_expressions(extension: dict) -> list[VrmExpression]:
    groups = (extension.get("blendShapeMaster") or {}).get("blendShapeGroups") or []
    out = []
    for group in groups:
        preset = str(group.get("presetName") or "unknown")
        custom = preset.lower() == "unknown"
        name = str(group.get("name", "")) if custom else canonical_expression(preset)
        binds = tuple((int(b["mesh"]), int(b["index"]), float(b.get("weight", 100)) / 100.0)
                      for b in group.get("binds") or [])
        out.append(VrmExpression(name, binds, bool(group.get("isBinary", False)), custom,
                                 bool(group.get("materialValues"))))
    return out


def _vrm1_expressions(extension: dict, nodes: list[dict]) -> list[VrmExpression]:
    expressions = extension.get("expressions") or {}
    out = []
    for kind in ("preset", "custom"):
        for name, item in (expressions.get(kind) or {}).items():
            binds = []
            for bind in item.get("morphTargetBinds") or []:
                node = int(bind["node"])
                if not 0 <= node < len(nodes) or "mesh" not in nodes[node]:
                    raise ValueError(f"expression {name!r} binds node {node}, which holds no mesh")
                binds.append((int(nodes[node]["mesh"]), int(bind["index"]), float(bind.get("weight", 1.0))))
            materials = bool(item.get("materialColorBinds") or item.get("textureTransformBinds"))
            out.append(VrmExpression(canonical_expression(name) if kind == "preset" else name,
                                     tuple(binds), bool(item.get("isBinary", False)), kind == "custom",
                                     materials))
    return out


def load_vrm_mapping(path: str | Path) -> dict[str, dict[str, float]]:
    """Read ``{expression: {arkitName: weight}}`` from JSON (or YAML: ``.yaml``/``.yml``)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise ValueError(f"{path}: YAML mappings need PyYAML (pip install pyyaml); or use JSON") from exc
        try:
            document = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ValueError(f"cannot read VRM mapping {path}: {exc.strerror or exc}") from None
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"VRM mapping {path} is not valid YAML ({' '.join(str(exc).split())})") from None
    else:
        document = read_json_file(path, "VRM mapping")
    return check_vrm_mapping(document, str(path))


def check_vrm_mapping(document: object, source: str) -> dict[str, dict[str, float]]:
    """Validate a parsed mapping; ``ValueError`` naming ``source`` and the bad entry."""
    if not isinstance(document, dict):
        raise ValueError(f"VRM mapping {source} must be an object {{expression: {{arkitName: weight}}}}")
    out: dict[str, dict[str, float]] = {}
    for expression, weights in document.items():
        if not isinstance(weights, dict):
            raise ValueError(f"VRM mapping {source}: {expression!r} must map ARKit names to weights")
        for arkit, weight in weights.items():
            if arkit not in ARKIT_52:
                raise ValueError(f"VRM mapping {source}: {expression!r} uses {arkit!r}, not an ARKit name")
            if not is_finite_number(weight):
                raise ValueError(f"VRM mapping {source}: {expression}.{arkit} must be a finite number")
        out[canonical_expression(str(expression))] = {a: float(w) for a, w in weights.items()}
    return out


def _effective_mapping(expressions: list[VrmExpression], override: dict[str, dict[str, float]],
                       source: str) -> dict[str, dict[str, float]]:
    names = {e.name for e in expressions}
    perfect = {e.name: match_target_name(e.name) for e in expressions if e.custom}
    perfect = {name: arkit for name, arkit in perfect.items() if arkit in ARKIT_52}
    if perfect:
        mapping = {name: {arkit: 1.0} for name, arkit in perfect.items()}
    else:
        mapping = default_vrm_mapping()
        if "blink" in names and not names & {"blinkLeft", "blinkRight"}:
            mapping["blink"] = dict(_BLINK_FALLBACK)
    absent = sorted(set(override) - names)
    if absent:
        warnings.warn(f"{source}: the mapping names expressions the model lacks: {', '.join(absent)}",
                      RigWarning, stacklevel=4)
    mapping.update(override)
    return mapping


@dataclass(frozen=True)
class VrmRig:
    """A VRM avatar driven through its expressions.

    mapping: ``(E, 52)`` ARKit -> expression weights; binds[m]: ``(K_m, E)`` expression ->
    morph weights of ``meshes[m]``; binary: ``(E,)`` bool.
    """

    source: str
    version: str
    expressions: tuple[VrmExpression, ...]
    mapping: np.ndarray
    binary: np.ndarray
    meshes: tuple[RigMesh, ...]
    binds: tuple[np.ndarray, ...]
    head_node: int | None
    head_pose: NodePose
    facing: str

    @property
    def expression_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.expressions)

    def expression_weights(self, arkit: np.ndarray) -> np.ndarray:
        """ARKit weights ``(T, 52)`` -> expression weights ``(T, E)`` in [0, 1]."""
        array = np.asarray(arkit, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != len(ARKIT_52):
            raise ValueError(f"arkit must have shape (T, {len(ARKIT_52)}), got {array.shape}")
        weights = np.clip(array @ self.mapping.T, 0.0, 1.0)
        return np.where(self.binary, (weights > 0.5).astype(np.float64), weights)

    def evaluate(self, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """Channels ``(T, 53)`` -> one ``(T, K_m)`` morph weight array per mesh, in [0, 1]."""
        expressions = self.expression_weights(check_channels(weights) @ arkit_channel_matrix().T)
        return tuple(np.clip(expressions @ bind.T, 0.0, 1.0) for bind in self.binds)

    @classmethod
    def load(cls, path: str | Path, mapping: str | Path | None = None) -> VrmRig:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls.from_document(read_document(data, str(path)), str(path), mapping)

    @classmethod
    def from_document(cls, document: dict, source: str, mapping: str | Path | dict | None = None) -> VrmRig:
        """Read the VRM extension; ``mapping``: override file path or parsed dict."""
        extensions = document.get("extensions") or {}
        nodes = document.get("nodes", [])
        for name in ("VRMC_vrm", "VRM"):
            if name in extensions and not isinstance(extensions[name], dict):
                raise ValueError(f"{source}: its {name} extension must be an object, got {extensions[name]!r:.40}")
        try:
            if "VRMC_vrm" in extensions:
                version, facing, expressions = "1.0", "+z", _vrm1_expressions(extensions["VRMC_vrm"], nodes)
            elif "VRM" in extensions:
                version, facing, expressions = "0.x", "-z", _vrm0_expressions(extensions["VRM"])
            else:
                raise ValueError("no VRM or VRMC_vrm extension")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{source}: unreadable VRM expressions ({exc})") from exc
        override = {} if mapping is None else (
            check_vrm_mapping(mapping, "mapping") if isinstance(mapping, dict) else load_vrm_mapping(mapping))
        table = _effective_mapping(expressions, override, source)
        matrix = np.zeros((len(expressions), len(ARKIT_52)))
        for e, expression in enumerate(expressions):
            for arkit, weight in table.get(expression.name, {}).items():
                matrix[e, ARKIT_52.index(arkit)] += weight
        meshes, binds = _bind_matrices(document, source, expressions)
        _warn_vrm(source, expressions, matrix)
        head = _vrm_head(extensions, version, len(nodes))
        pose = node_pose(nodes[head]) if head is not None else NodePose()
        return cls(source, version, tuple(expressions), matrix,
                   np.array([e.is_binary for e in expressions], dtype=bool), meshes, binds, head, pose, facing)


def _bind_matrices(document: dict, source: str,
                   expressions: list[VrmExpression]) -> tuple[tuple[RigMesh, ...], tuple[np.ndarray, ...]]:
    all_meshes = document.get("meshes", [])
    used = sorted({mesh for e in expressions for mesh, _, _ in e.binds})
    meshes, binds = [], []
    for mesh in used:
        if not 0 <= mesh < len(all_meshes):
            raise ValueError(f"{source}: a VRM expression binds mesh {mesh}; the file has {len(all_meshes)}")
        count = len((all_meshes[mesh].get("primitives") or [{}])[0].get("targets") or [])
        names = mesh_target_names(all_meshes[mesh]) or [f"target{k}" for k in range(count)]
        matrix = np.zeros((count, len(expressions)))
        for e, expression in enumerate(expressions):
            for bound, index, weight in expression.binds:
                if bound != mesh:
                    continue
                if not 0 <= index < count:
                    raise ValueError(f"{source}: expression {expression.name!r} binds morph target "
                                     f"{index} of mesh {mesh}, which has {count}")
                matrix[index, e] += weight
        meshes.append(RigMesh(mesh, tuple(names)))
        binds.append(matrix)
    if not meshes:
        raise ValueError(f"{source}: no VRM expression binds a morph target")
    return tuple(meshes), tuple(binds)


def _warn_vrm(source: str, expressions: list[VrmExpression], matrix: np.ndarray) -> None:
    parts = []
    undriven = [name for k, name in enumerate(ARKIT_52) if not matrix[:, k].any() and name != "tongueOut"]
    if undriven:
        parts.append(f"{len(undriven)} ARKit shapes drive no expression of this model: {', '.join(undriven)}")
    materials = [e.name for e in expressions if e.material_binds]
    if materials:
        parts.append(f"material binds are not animated for: {', '.join(materials)}")
    if parts:
        warnings.warn(f"{source}: " + "; ".join(parts), RigWarning, stacklevel=3)


def _vrm_head(extensions: dict, version: str, n_nodes: int) -> int | None:
    """The humanoid ``head`` bone's node, or None."""
    if version == "1.0":
        bones = (extensions["VRMC_vrm"].get("humanoid") or {}).get("humanBones") or {}
        node = (bones.get("head") or {}).get("node")
    else:
        bones = (extensions["VRM"].get("humanoid") or {}).get("humanBones") or []
        node = next((b.get("node") for b in bones if b.get("bone") == "head"), None)
    return int(node) if isinstance(node, int) and 0 <= node < n_nodes else None
