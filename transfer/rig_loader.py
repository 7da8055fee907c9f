"""A target file -> its rig, chosen by content, not by extension."""

from __future__ import annotations

from pathlib import Path

from facecast.transfer.gltf_rig import GltfRig
from facecast.transfer.json_files import read_json_file
from facecast.transfer.rigs import Rig, identity_rig, read_document
from facecast.transfer.vrm import VrmRig


def load_rig(path: str | Path, head_node: str | int | None = None,
             vrm_mapping: str | Path | None = None) -> Rig:
    """The rig of a file, chosen by content, not by extension.

    GLB / glTF JSON with a ``VRM`` or ``VRMC_vrm`` extension -> ``VrmRig`` (``vrm_mapping``:
    optional override file); other GLB / glTF -> ``GltfRig``; JSON coefficient
    records -> :class:`IctRig`. ``ValueError`` naming the file otherwise, also for a glTF whose JSON holds
    values of the wrong type or out of range.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if data[:4] != b"glTF":
        parsed = read_json_file(path, "target (neither a GLB nor JSON)")
        if not (isinstance(parsed, dict) and "asset" in parsed):
            return identity_rig(parsed, str(path))
    document = read_document(data, str(path))
    try:
        extensions = document.get("extensions") or {}
        if "VRM" in extensions or "VRMC_vrm" in extensions:
            return VrmRig.from_document(document, str(path), vrm_mapping)
        if vrm_mapping is not None:
            raise ValueError(f"{path} is not a VRM file; a VRM mapping does not apply to it")
        return GltfRig.from_document(document, str(path), head_node)
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:  # a wrong type or range
        raise ValueError(f"{path}: malformed glTF ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:  # say which file, once
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: {exc}") from None
