"""The GLB container: a JSON chunk, an optional BIN chunk and any further chunks, split and joined
(glTF 2.0, section 4.4). Nothing here reads the JSON beyond parsing it."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

GLB_MAGIC = b"glTF"
JSON_CHUNK = 0x4E4F534A
BIN_CHUNK = 0x004E4942


@dataclass(frozen=True)
class GlbChunks:
    """A parsed GLB: its JSON ``document``, BIN chunk bytes (None if absent) and any
    further chunks ``(type, bytes)``, which are kept as they are."""

    document: dict
    binary: bytes | None
    others: tuple[tuple[int, bytes], ...] = ()


def read_glb(data: bytes) -> GlbChunks:
    """Split GLB bytes into chunks; ``ValueError`` when they are not a version 2 GLB."""
    if len(data) < 20 or data[:4] != GLB_MAGIC:
        raise ValueError("not a GLB file (no 'glTF' header)")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise ValueError(f"a GLB of version {version} (glTF {'1.0' if version == 1 else '?'}); facecast reads glTF "
                         "2.0 (GLB version 2): convert it, e.g. by importing it into Blender and exporting glTF 2.0")
    if length > len(data):
        raise ValueError(f"truncated GLB: its header declares {length} bytes, the file has {len(data)}")
    chunks, position = [], 12
    while position + 8 <= length:
        size, kind = struct.unpack_from("<II", data, position)
        if position + 8 + size > length:
            raise ValueError(f"truncated GLB: a chunk of {size} bytes at byte {position} runs past the end")
        chunks.append((kind, data[position + 8:position + 8 + size]))
        position += 8 + size
    if not chunks or chunks[0][0] != JSON_CHUNK:
        raise ValueError("GLB does not start with a JSON chunk")
    try:
        document = json.loads(chunks[0][1])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"the GLB's JSON chunk is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError("the GLB's JSON chunk is not a JSON object")
    binary = chunks[1][1] if len(chunks) > 1 and chunks[1][0] == BIN_CHUNK else None
    others = tuple(chunks[2:] if binary is not None else chunks[1:])
    return GlbChunks(document, binary, others)


def _chunk(kind: int, data: bytes, pad: bytes) -> bytes:
    data = data + pad * (-len(data) % 4)
    return struct.pack("<II", len(data), kind) + data


def write_glb(chunks: GlbChunks) -> bytes:
    """GLB bytes of ``chunks`` (JSON padded with spaces, BIN with zeros)."""
    body = _chunk(JSON_CHUNK, json.dumps(chunks.document, separators=(",", ":")).encode(), b" ")
    if chunks.binary is not None:
        body += _chunk(BIN_CHUNK, chunks.binary, b"\0")
    body += b"".join(struct.pack("<II", len(data), kind) + data for kind, data in chunks.others)
    return GLB_MAGIC + struct.pack("<II", 2, 12 + len(body)) + body
