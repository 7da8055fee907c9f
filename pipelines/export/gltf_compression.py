"""Compressed glTF geometry made plain: ``EXT_meshopt_compression`` buffer views and
``KHR_draco_mesh_compression`` primitives decoded into ordinary buffer views.

Face-capture apps and web pipelines (gltfpack, gltf-transform) ship heads compressed; Blender 3.4
opens neither extension, so a driven avatar is written decompressed by default. What changes
(everything else keeps its JSON and its bytes, in the same order):

- each meshopt buffer view gets its decoded bytes (filters undone) and loses the extension; the
  fallback buffer it pointed at (no data of its own) is dropped;
- each Draco primitive's accessors get buffer views of their own with the decoded indices and
  attributes, in the accessors' own component types; the Draco buffer views are dropped;
- all data ends in the one BIN chunk (buffer 0), each view 4-byte aligned; the two extensions leave
  ``extensionsUsed`` / ``extensionsRequired``. ``KHR_mesh_quantization`` stays: it is not
  compression and every reader named above reads it.

Decoders: the ``meshopt`` and ``DracoPy`` wheels (meshoptimizer's and Draco's own C++ code).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace

import numpy as np

from facecast.transfer.glb import GlbChunks

MESHOPT = "EXT_meshopt_compression"
DRACO = "KHR_draco_mesh_compression"
COMPONENT_TYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
                   5126: np.float32}
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


@dataclass(frozen=True)
class Decompressed:
    """What :func:`decompress_glb` did: the file, and how many meshopt buffer views and Draco
    primitives it decoded (both 0: the file came back unchanged)."""

    chunks: GlbChunks
    meshopt_views: int = 0
    draco_primitives: int = 0


def compression_of(document: dict) -> tuple[str, ...]:
    """The geometry compression extensions a glTF document uses, of the two this module decodes."""
    used = set(document.get("extensionsUsed") or []) | set(document.get("extensionsRequired") or [])
    return tuple(name for name in (MESHOPT, DRACO) if name in used)


def _buffers(chunks: GlbChunks) -> list[bytes | None]:
    """Each buffer's bytes: buffer 0 without a uri is the BIN chunk, data URIs are decoded; None for a
    meshopt fallback buffer (it has no data). ``ValueError`` for an external file."""
    out: list[bytes | None] = []
    for k, buffer in enumerate(chunks.document.get("buffers") or []):
        uri = buffer.get("uri")
        if uri is None:
            if (buffer.get("extensions") or {}).get(MESHOPT, {}).get("fallback"):
                out.append(None)
            elif k == 0 and chunks.binary is not None:
                out.append(chunks.binary)
            else:
                raise ValueError(f"buffer {k} has neither data nor a uri")
        elif uri.startswith("data:") and "," in uri:
            out.append(base64.b64decode(uri.split(",", 1)[1]))
        else:
            raise ValueError(f"buffer {k} lives in an external file ({uri}); to decompress it, "
                             "pack the model into one GLB first (e.g. gltf-transform copy in.gltf out.glb)")
    return out


def _view_bytes(document: dict, buffers: list[bytes | None], index: int) -> bytes:
    view = document["bufferViews"][index]
    data = buffers[view["buffer"]]
    if data is None:
        raise ValueError(f"buffer view {index} points into a meshopt fallback buffer, which has no data")
    start = view.get("byteOffset", 0)
    return data[start:start + view["byteLength"]]


def _meshopt_view(document: dict, buffers: list[bytes | None], index: int) -> bytes:
    import meshopt

    view = document["bufferViews"][index]
    ext = view["extensions"][MESHOPT]
    data = buffers[ext["buffer"]]
    if data is None:
        raise ValueError(f"buffer view {index}: its compressed data is in a buffer without data")
    start = ext.get("byteOffset", 0)
    source = data[start:start + ext["byteLength"]]
    mode, stride, count = ext["mode"], ext["byteStride"], ext["count"]
    try:
        decoded = meshopt.decode_gltf_buffer(source, count, stride, mode, ext.get("filter", "NONE"))
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"buffer view {index}: meshopt data does not decode ({exc})") from exc
    out = np.ascontiguousarray(decoded).tobytes()
    if len(out) != view["byteLength"]:
        raise ValueError(f"buffer view {index}: decoded {len(out)} bytes, the view declares {view['byteLength']}")
    return out


def _draco_primitive(document: dict, buffers: list[bytes | None], primitive: dict,
                     label: str) -> dict[int, bytes]:
    """``{accessor index: its decoded bytes}`` for one Draco primitive."""
    import DracoPy

    ext = primitive["extensions"][DRACO]
    try:
        mesh = DracoPy.decode(_view_bytes(document, buffers, ext["bufferView"]))
    except Exception as exc:  # DracoPy raises its own exception types for corrupt data
        raise ValueError(f"{label}: Draco data does not decode ({exc})") from exc
    accessors = document["accessors"]
    out: dict[int, bytes] = {}
    index = primitive.get("indices")
    if index is not None:
        faces = np.asarray(mesh.faces).reshape(-1)
        out[index] = _cast(faces, accessors[index], f"{label} indices")
    for name, unique_id in ext.get("attributes", {}).items():
        target = primitive.get("attributes", {}).get(name)
        attribute = mesh.get_attribute_by_unique_id(unique_id)
        if target is None or attribute is None:
            raise ValueError(f"{label}: Draco attribute {name} (id {unique_id}) is missing")
        out[target] = _cast(np.asarray(attribute["data"]), accessors[target], f"{label} {name}")
    return out


def _cast(values: np.ndarray, accessor: dict, label: str) -> bytes:
    """Decoded values ``(N, W)`` as the accessor's component type, checked against its count and width;
    the accessor's bounds, where it has them, are set to the decoded values'."""
    dtype = COMPONENT_TYPES[accessor["componentType"]]
    width = WIDTHS[accessor["type"]]
    if values.size != accessor["count"] * width:
        raise ValueError(f"{label}: decoded {values.size} values, the accessor holds "
                         f"{accessor['count']} x {width}")
    values = values.reshape(-1, width)
    if np.issubdtype(dtype, np.integer) and accessor.get("normalized") and values.dtype.kind == "f":
        values = np.round(values * np.iinfo(dtype).max)  # floats from a normalised integer attribute
    typed = np.ascontiguousarray(values, dtype=dtype)
    if "min" in accessor or "max" in accessor:  # Draco quantises: the bounds follow the decoded values
        accessor["min"], accessor["max"] = typed.min(0).tolist(), typed.max(0).tolist()
    return typed.tobytes()


def decompress_glb(chunks: GlbChunks) -> Decompressed:
    """``chunks`` with every meshopt buffer view and Draco primitive decoded (see the module doc).

    ``ValueError`` naming the buffer view or primitive when data is missing or does not decode.
    """
    document = chunks.document
    if not compression_of(document):
        return Decompressed(chunks)
    buffers = _buffers(chunks)
    views = document.get("bufferViews") or []
    data: dict[int, bytes] = {k: _meshopt_view(document, buffers, k) for k, view in enumerate(views)
                              if MESHOPT in (view.get("extensions") or {})}
    meshopt_count = len(data)
    accessors = document.get("accessors") or []
    decoded: dict[int, bytes] = {}
    index_accessors: set[int] = set()
    draco_views: set[int] = set()
    draco_count = 0
    for m, mesh in enumerate(document.get("meshes") or []):
        for p, primitive in enumerate(mesh.get("primitives") or []):
            if DRACO in (primitive.get("extensions") or {}):
                decoded.update(_draco_primitive(document, buffers, primitive, f"mesh {m} primitive {p}"))
                if primitive.get("indices") is not None:
                    index_accessors.add(primitive["indices"])
                draco_views.add(primitive["extensions"][DRACO]["bufferView"])
                del primitive["extensions"][DRACO]
                if not primitive["extensions"]:
                    del primitive["extensions"]
                draco_count += 1
    for k in range(len(views)):
        if k not in data and k not in draco_views:
            data[k] = _view_bytes(document, buffers, k)
    # the new views: the old ones minus Draco's, then one per decoded Draco accessor
    keep = [k for k in range(len(views)) if k not in draco_views]
    renumber = {old: new for new, old in enumerate(keep)}
    new_views, parts, offset = [], [], 0

    def place(view: dict, payload: bytes) -> int:
        nonlocal offset
        new_views.append({**view, "buffer": 0, "byteOffset": offset, "byteLength": len(payload)})
        parts.append(payload + b"\0" * (-len(payload) % 4))
        offset += len(parts[-1])
        return len(new_views) - 1

    for old in keep:
        view = {key: value for key, value in views[old].items() if key != "extensions"}
        extensions = {key: value for key, value in (views[old].get("extensions") or {}).items() if key != MESHOPT}
        if extensions:
            view["extensions"] = extensions
        place(view, data[old])
    for accessor in accessors:
        if "bufferView" in accessor:
            accessor["bufferView"] = renumber[accessor["bufferView"]]
        for part in ("indices", "values"):
            sparse = (accessor.get("sparse") or {}).get(part)
            if sparse is not None:
                sparse["bufferView"] = renumber[sparse["bufferView"]]
    for image in document.get("images") or []:
        if "bufferView" in image:
            image["bufferView"] = renumber[image["bufferView"]]
    for index, payload in sorted(decoded.items()):
        target = ELEMENT_ARRAY_BUFFER if index in index_accessors else ARRAY_BUFFER
        accessors[index]["bufferView"] = place({"target": target}, payload)
        accessors[index].pop("byteOffset", None)
    document["bufferViews"] = new_views
    document["buffers"] = [{"byteLength": offset}]
    for key in ("extensionsUsed", "extensionsRequired"):
        names = [name for name in document.get(key) or [] if name not in (MESHOPT, DRACO)]
        if names:
            document[key] = names
        else:
            document.pop(key, None)
    return Decompressed(replace(chunks, binary=b"".join(parts)), meshopt_count, draco_count)
