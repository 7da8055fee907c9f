"""Adding a retargeted :class:`~facecast.transfer.retarget.Animation` to an existing glTF file.

The user's file is kept as it is: the new keyframe data is appended after the end of the
original binary data (4-byte aligned), and the JSON only gains new accessors, buffer
views and one animation, plus the new buffer length. Existing buffer views, accessors,
meshes, materials, images and animations keep their JSON and their bytes. The one other
JSON change: a head node given as a ``matrix`` is rewritten as the equal
translation/rotation/scale, because glTF forbids animating a node that has a matrix.
Compressed geometry (meshopt, Draco) is first decoded into plain buffer views unless asked
not to (:mod:`~facecast.pipelines.export.gltf_compression`): then the binary data is rebuilt.

The animation (one per call, named ``name``, LINEAR interpolation, times in seconds):

- one ``weights`` channel per node holding an animated mesh (nodes sharing a mesh share
  its keyframes); the output accessor holds ``T * K`` floats, the K weights of keyframe 0,
  then of keyframe 1, ... (K = the mesh's morph target count);
- a ``rotation`` channel (``T`` xyzw unit quaternions) and/or ``translation`` channel
  (``T`` vectors in metres) on the animation's head node, when it has them.

Supported containers: GLB (also ``.vrm``, which is GLB) whose data lives in the binary
chunk (:func:`animate_glb`), and ``.gltf`` JSON with external or data-URI buffers
(:func:`animate_gltf`: the new data becomes one more buffer with a base64 data URI, so
external ``.bin`` files are neither read nor changed). :func:`animate_document` picks
by content.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np

from facecast.pipelines.export.arkit_morphs import arkit_weights
from facecast.pipelines.export.avatar import AvatarMesh
from facecast.pipelines.export.gltf import GltfOptions, export_glb
from facecast.pipelines.export.gltf_compression import compression_of, decompress_glb
from facecast.transfer.glb import GLB_MAGIC, GlbChunks, read_glb, write_glb
from facecast.transfer.retarget import Animation
from facecast.transfer.rigs import node_pose

FLOAT = 5126
LINEAR = "LINEAR"


class _Appender:
    """New float accessors, each in its own buffer view of ``buffer`` from byte ``offset`` on."""

    def __init__(self, document: dict, buffer: int, offset: int) -> None:
        self.document, self.buffer, self.offset = document, buffer, offset
        self.parts: list[bytes] = []

    def accessor(self, array: np.ndarray, kind: str, bounds: bool = False) -> int:
        """An accessor over float32 ``array`` ``(N, W)`` (or ``(N,)`` for SCALAR)."""
        data = np.ascontiguousarray(array, dtype="<f4")
        start = self.offset + sum(len(p) for p in self.parts)
        views = self.document.setdefault("bufferViews", [])
        views.append({"buffer": self.buffer, "byteOffset": start, "byteLength": data.nbytes})
        self.parts.append(data.tobytes() + b"\0" * (-data.nbytes % 4))
        accessor = {"bufferView": len(views) - 1, "componentType": FLOAT, "count": len(data), "type": kind}
        if bounds:
            flat = data.reshape(len(data), -1)
            accessor["min"] = [float(v) for v in flat.min(axis=0)]
            accessor["max"] = [float(v) for v in flat.max(axis=0)]
        accessors = self.document.setdefault("accessors", [])
        accessors.append(accessor)
        return len(accessors) - 1

    def data(self) -> bytes:
        return b"".join(self.parts)


def _morph_nodes(document: dict, animation: Animation) -> list[tuple[int, list[int]]]:
    """``(track number, nodes holding its mesh)``; ``ValueError`` for mismatched meshes."""
    meshes, nodes = document.get("meshes", []), document.get("nodes", [])
    out = []
    for number, track in enumerate(animation.morphs):
        if not 0 <= track.mesh < len(meshes):
            raise ValueError(f"animation drives mesh {track.mesh}; the file has {len(meshes)} meshes")
        targets = len((meshes[track.mesh].get("primitives") or [{}])[0].get("targets") or [])
        if targets != track.weights.shape[1]:
            raise ValueError(f"mesh {track.mesh} has {targets} morph targets, the animation "
                             f"drives {track.weights.shape[1]}")
        holders = [k for k, node in enumerate(nodes) if node.get("mesh") == track.mesh]
        if not holders:
            raise ValueError(f"no node holds mesh {track.mesh}; its weights cannot be animated")
        out.append((number, holders))
    return out


def _prepare_head(document: dict, node: int) -> None:
    """Replace a head node's ``matrix`` by the equal TRS (animated nodes may not have one)."""
    nodes = document.get("nodes", [])
    if not 0 <= node < len(nodes):
        raise ValueError(f"animation head node {node} out of range ({len(nodes)} nodes)")
    if "matrix" in nodes[node]:
        pose = node_pose(nodes[node])
        del nodes[node]["matrix"]
        nodes[node].update(translation=pose.translation.tolist(), rotation=pose.rotation.tolist(),
                           scale=pose.scale.tolist())


def add_animation(document: dict, animation: Animation, buffer: int, offset: int, name: str) -> bytes:
    """Append ``animation`` to ``document`` (in place); returns the bytes to store at byte
    ``offset`` (4-aligned) of buffer ``buffer``, which the caller must provide."""
    if offset % 4:
        raise ValueError(f"new data must start 4-byte aligned, got offset {offset}")
    holders = _morph_nodes(document, animation)
    appender = _Appender(document, buffer, offset)
    times = appender.accessor(animation.times, "SCALAR", bounds=True)
    samplers, channels = [], []

    def channel(output: int, node: int, path: str) -> None:
        samplers.append({"input": times, "output": output, "interpolation": LINEAR})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path}})

    for number, nodes in holders:
        output = appender.accessor(animation.morphs[number].weights.reshape(-1), "SCALAR")
        for node in nodes:
            channel(output, node, "weights")
    if animation.node is not None and (animation.rotation is not None or animation.translation is not None):
        _prepare_head(document, animation.node)
        if animation.rotation is not None:
            quats = animation.rotation / np.linalg.norm(animation.rotation, axis=1, keepdims=True)
            channel(appender.accessor(quats, "VEC4"), animation.node, "rotation")
        if animation.translation is not None:
            channel(appender.accessor(animation.translation, "VEC3"), animation.node, "translation")
        for node, rotation, translation in animation.companions:  # eyes, teeth: rigid with the head
            _prepare_head(document, node)
            quats = rotation / np.linalg.norm(rotation, axis=1, keepdims=True)
            channel(appender.accessor(quats, "VEC4"), node, "rotation")
            channel(appender.accessor(translation, "VEC3"), node, "translation")
    if not channels:
        raise ValueError("the animation drives nothing")
    document.setdefault("animations", []).append({"name": name, "samplers": samplers, "channels": channels})
    return appender.data()


def animate_glb(original: bytes, animation: Animation, name: str = "facecast",
                keep_compression: bool = False) -> bytes:
    """``original`` GLB (or VRM) bytes with ``animation`` added (see the module doc).

    Compressed geometry (meshopt, Draco) is decoded first unless ``keep_compression``
    (:mod:`~facecast.pipelines.export.gltf_compression`); otherwise the original BIN chunk is a
    byte-identical prefix of the new one. Raises ``ValueError`` when the GLB keeps its data
    outside the binary chunk or the animation does not fit it.
    """
    chunks = read_glb(original)
    if not keep_compression:
        chunks = decompress_glb(chunks).chunks
    document = chunks.document
    buffers = document.get("buffers") or []
    if chunks.binary is None or not buffers or "uri" in buffers[0]:
        raise ValueError("the GLB keeps no data in its binary chunk (buffer 0 has a uri or is "
                         "missing); re-export it as a self-contained GLB or pass the .gltf")
    binary = chunks.binary + b"\0" * (-len(chunks.binary) % 4)
    added = add_animation(document, animation, 0, len(binary), name)
    buffers[0]["byteLength"] = len(binary) + len(added)
    return write_glb(GlbChunks(document, binary + added, chunks.others))


def animate_gltf(original: bytes, animation: Animation, name: str = "facecast",
                 keep_compression: bool = False) -> bytes:
    """``original`` ``.gltf`` JSON bytes with ``animation`` added; the new data is one more
    buffer with a base64 data URI. Existing buffers (external or data URIs) are untouched, so
    compressed geometry stays compressed: ``ValueError`` unless ``keep_compression``."""
    try:
        document = json.loads(original)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not glTF JSON ({exc})") from exc
    if not isinstance(document, dict) or "asset" not in document:
        raise ValueError("not a glTF document (no 'asset')")
    if compression_of(document) and not keep_compression:
        raise ValueError(f"the .gltf's geometry is compressed ({', '.join(compression_of(document))}) and "
                         "only a GLB is decompressed: pack it into a GLB first (gltf-transform copy in.gltf "
                         "out.glb), or keep the compression (--keep-compression)")
    buffers = document.setdefault("buffers", [])
    added = add_animation(document, animation, len(buffers), 0, name)
    uri = "data:application/octet-stream;base64," + base64.b64encode(added).decode("ascii")
    buffers.append({"byteLength": len(added), "uri": uri})
    return json.dumps(document, indent=1).encode()


def animate_document(original: bytes, animation: Animation, name: str = "facecast",
                     keep_compression: bool = False) -> bytes:
    """:func:`animate_glb` for GLB/VRM bytes, :func:`animate_gltf` for glTF JSON."""
    if original[:4] == GLB_MAGIC:
        return animate_glb(original, animation, name, keep_compression)
    return animate_gltf(original, animation, name, keep_compression)


def animated_avatar_glb(mesh: AvatarMesh, animation: Animation,
                        options: GltfOptions = GltfOptions()) -> bytes:
    """The static avatar GLB of ``mesh`` (``export_glb``) with ``animation`` added.

    ``animation`` comes from an :class:`~facecast.transfer.rigs.IctRig`: mesh 0 with
    ``len(mesh.morph_names)`` targets, head node 0; with ``options.names`` ``"arkit"`` its weights are
    mapped onto the 52 ARKit targets the file then has.
    """
    for track in animation.morphs:
        if track.mesh != 0 or track.weights.shape[1] != len(mesh.morph_names):
            raise ValueError(f"an ICT avatar animation drives mesh 0 with {len(mesh.morph_names)} "
                             f"targets; got mesh {track.mesh} with {track.weights.shape[1]}")
    if options.names == "arkit":  # the targets are the 52 ARKit shapes: so are the keyframes
        animation = replace(animation, morphs=tuple(replace(t, weights=arkit_weights(t.weights, mesh.morph_names))
                                                    for t in animation.morphs))
    return animate_glb(export_glb(mesh, options), animation)
