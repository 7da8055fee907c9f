"""Mesh exporters: one module per format, dispatched by file extension.

Each format module turns an :class:`~facecast.pipelines.export.avatar.AvatarMesh` into
bytes and never touches the filesystem; :func:`write_mesh` is the only writer.

=========  ===========================================================  ======
extension  content                                                      units
=========  ===========================================================  ======
``.glb``   mesh per material, normals, UVs, 53 morph targets, materials  m
``.obj``   triangles, normals, UVs, ``usemtl`` + a ``.mtl`` beside it     m
``.ply``   binary little-endian; normals, UVs, colours per vertex       m
=========  ===========================================================  ======

OBJ and PLY take a :class:`~facecast.pipelines.export.layout.MeshOptions` (``units`` m / cm / mm,
``quads`` to keep the ICT quads).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from facecast.pipelines.export.avatar import AvatarMesh

from .gltf import GltfOptions, export_glb
from .layout import MeshOptions
from .obj import export_mtl, export_obj, texture_file_name
from .ply import export_ply

#: the longest file name (bytes) Linux and macOS file systems take
NAME_MAX = 255


class ExportError(RuntimeError):
    """A mesh cannot be exported to the requested path; the message says why."""


def _obj_files(mesh: AvatarMesh, stem: str, options: MeshOptions) -> dict[str, bytes]:
    mtl = f"{stem}.mtl"
    textures = {texture_file_name(stem, t.material): t.png for t in mesh.textures}
    return {**textures, mtl: export_mtl(mesh, stem), f"{stem}.obj": export_obj(mesh, mtl, options)}


#: extension -> function(mesh, file stem, OBJ/PLY options) -> {file name: bytes}; the main file comes last.
EXPORTERS: dict[str, Callable[[AvatarMesh, str, MeshOptions], dict[str, bytes]]] = {
    ".glb": lambda mesh, stem, options: {f"{stem}.glb": export_glb(mesh, GltfOptions(names=options.names))},
    ".obj": _obj_files,
    ".ply": lambda mesh, stem, options: {f"{stem}.ply": export_ply(mesh, options)},
}


def export_format(path: str | Path) -> str:
    """The registered extension of ``path`` (``".glb"``), or :class:`ExportError`."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORTERS:
        shown = suffix or "no extension"
        raise ExportError(f"cannot export to {path}: {shown} is not a known format; "
                          f"use one of {', '.join(sorted(EXPORTERS))}")
    return suffix


def export_bytes(mesh: AvatarMesh, fmt: str, stem: str = "avatar", options: MeshOptions = MeshOptions()
                 ) -> dict[str, bytes]:
    """``{file name: bytes}`` of ``mesh`` in format ``fmt`` (``"glb"``, ``".obj"``, ...).

    OBJ gives two files, ``{stem}.mtl`` and ``{stem}.obj`` (which names the MTL).
    """
    suffix = fmt.lower() if fmt.startswith(".") else f".{fmt.lower()}"
    return EXPORTERS[export_format(f"{stem}{suffix}")](mesh, stem, options)


def check_output(path: str | Path) -> Path:
    """Fail early (:class:`ExportError`) when ``path`` has an unknown extension or no usable folder.

    Missing parent folders are not created here (:func:`write_files` makes them when it writes, so a
    run that fails leaves no empty folder behind); the nearest existing one must be writable.

    This only checks what can be checked cheaply; :func:`write_mesh` reports the rest.
    """
    path = Path(path)
    export_format(path)
    folder = path.parent
    longest = max((part for part in path.parts), key=lambda part: len(part.encode()), default="")
    if len(longest.encode()) > NAME_MAX - len(".facecast-tmp-XXXXXXXX"):  # our temporary names add to it
        raise ExportError(f"cannot write {str(path)[:80]}...: the name {longest[:40]}... is "
                          f"{len(longest.encode())} bytes long; file systems take {NAME_MAX}, use a shorter one")
    if path.is_dir():
        raise ExportError(f"cannot write {path}: it is a folder; give a file name such as {path / 'head.glb'}")
    ancestor = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not ancestor.is_dir():
        raise ExportError(f"cannot write {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: folder {ancestor} is not writable; choose another path")
    return path


def make_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents (:class:`ExportError` with the reason if that fails)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create folder {folder} ({exc.strerror or exc})") from exc


def _write_temporary(folder: Path, name: str, data: bytes) -> Path:
    temporary = folder / f".{name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never reuse a file; mode 0o666 minus the umask, like any new file
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _move_into_place(moves: list[tuple[Path, Path]]) -> None:
    """``os.replace`` every ``(temporary, final)``; if one fails, put the old files back."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for temporary, final in moves:
            backup = None
            if final.exists():
                backup = final.with_name(f".{final.name}.{secrets.token_hex(6)}.bak")
                os.replace(final, backup)
            done.append((final, backup))
            os.replace(temporary, final)
    except OSError:
        for final, backup in reversed(done):
            if backup is None:
                final.unlink(missing_ok=True)
            else:
                os.replace(backup, final)
        raise
    for _, backup in done:
        if backup is not None:
            backup.unlink(missing_ok=True)


def write_files(folder: str | Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``{file name: bytes}`` into ``folder`` all-or-nothing (temporary files + ``os.replace``).

    Raises :class:`ExportError` naming the folder when a file cannot be written; then
    no new file is left and the files it would have replaced are restored.
    """
    folder = Path(folder)
    make_folder(folder)
    finals = [folder / name for name in files]
    for final in finals:
        if final.is_dir():
            raise ExportError(f"cannot write {final}: it is a folder; remove it or choose another name")
    moves: list[tuple[Path, Path]] = []
    try:
        for (name, data), final in zip(files.items(), finals, strict=True):
            moves.append((_write_temporary(folder, name, data), final))
        _move_into_place(moves)
    except OSError as exc:
        raise ExportError(f"cannot write into {folder}: {exc.strerror or exc}") from exc
    finally:
        for temporary, _ in moves:
            temporary.unlink(missing_ok=True)
    return finals


def write_mesh(mesh: AvatarMesh, path: str | Path, options: MeshOptions = MeshOptions()) -> list[Path]:
    """Write ``mesh`` to ``path`` in the format of its extension (``options``: units and quads of OBJ
    and PLY; GLB is metres and triangles); returns the files written.

    All files of a format (OBJ + MTL beside it, named after ``path``) are written to
    temporary files in the target folder, then moved into place with ``os.replace``;
    if a move fails the files it replaced are restored, so the set appears complete
    or not at all. Raises :class:`ExportError` with a one-line reason for unknown
    extensions and unwritable paths.
    """
    path = check_output(path)
    return write_files(path.parent, EXPORTERS[export_format(path)](mesh, path.stem, options))
