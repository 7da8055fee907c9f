"""A ``.gltf`` (JSON with external or data-URI buffers and images) packed into one self-contained GLB.

A transfer onto a ``.gltf`` target writes a GLB: its buffers are read (files next to the ``.gltf``, or
data URIs) and laid end to end in the BIN chunk, every buffer view re-pointed there (4-byte aligned, in
order), and images kept as files beside it are embedded as buffer views with their MIME type. The JSON is
otherwise kept. Every file is checked before it is read: a regular file (no FIFO, no device), inside the
size the glTF declares (buffers) or :data:`MAX_IMAGE_BYTES` (images); problems are a ``ValueError``
naming the file.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import unquote

from facecast.transfer.glb import GlbChunks

MAX_IMAGE_BYTES = 256 << 20
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".ktx2": "image/ktx2"}


def _data_uri(uri: str, source: str) -> bytes:
    try:
        return base64.b64decode(uri.split(",", 1)[1], validate=False)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{source}: a data URI does not decode ({exc})") from None


def _file(base: Path, uri: str, limit: int, source: str) -> bytes:
    path = (base / unquote(uri)).resolve()
    if not path.is_file():
        raise ValueError(f"{source}: {uri} is not a file next to it ({path})")
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{source}: {uri} holds {size} bytes, more than the {limit} expected")
    with path.open("rb") as handle:
        return handle.read(limit)


def _buffer_bytes(buffer: dict, base: Path, source: str, index: int) -> bytes:
    length = buffer.get("byteLength")
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"{source}: buffer {index} has no valid byteLength")
    uri = buffer.get("uri")
    if not isinstance(uri, str):
        raise ValueError(f"{source}: buffer {index} has no uri (a .gltf keeps its data in files or data URIs)")
    data = _data_uri(uri, source) if uri.startswith("data:") else _file(base, uri, length, source)
    if len(data) < length:
        raise ValueError(f"{source}: buffer {index} ({uri[:40]}) holds {len(data)} bytes, the glTF declares {length}")
    return data[:length]


def pack_gltf(document: dict, base: Path, source: str) -> GlbChunks:
    """``document`` (a ``.gltf``'s JSON, changed in place) with its buffers and image files in one BIN chunk;
    ``base``: the folder its relative URIs start from."""
    buffers = [_buffer_bytes(b, base, source, k) for k, b in enumerate(document.get("buffers") or [])]
    parts: list[bytes] = []
    offset = 0

    def place(data: bytes) -> int:
        nonlocal offset
        start = offset
        parts.append(data + b"\0" * (-len(data) % 4))
        offset += len(parts[-1])
        return start

    for k, view in enumerate(document.get("bufferViews") or []):
        buffer, start, length = view.get("buffer"), view.get("byteOffset", 0), view.get("byteLength")
        if not (isinstance(buffer, int) and 0 <= buffer < len(buffers) and isinstance(start, int)
                and isinstance(length, int) and 0 <= start and 0 <= length and start + length <= len(buffers[buffer])):
            raise ValueError(f"{source}: buffer view {k} lies outside its buffer")
        view["buffer"], view["byteOffset"] = 0, place(buffers[buffer][start:start + length])
    views = document.setdefault("bufferViews", [])
    for k, image in enumerate(document.get("images") or []):
        uri = image.get("uri")
        if not isinstance(uri, str):
            continue
        data = _data_uri(uri, source) if uri.startswith("data:") else _file(base, uri, MAX_IMAGE_BYTES, source)
        kind = uri[5:].split(";")[0] if uri.startswith("data:") else IMAGE_TYPES.get(Path(uri).suffix.lower())
        if kind is None:
            raise ValueError(f"{source}: image {k} ({uri[:40]}) is not PNG, JPEG, WebP or KTX2")
        views.append({"buffer": 0, "byteOffset": place(data), "byteLength": len(data)})
        image.pop("uri")
        image["bufferView"], image["mimeType"] = len(views) - 1, kind
    document["buffers"] = [{"byteLength": offset}] if offset or views else []
    return GlbChunks(document, b"".join(parts) if offset else None)
