"""Batch inputs: expand globs, folders and files into a stable list, each with its output folder.

``expand_inputs(["footage/**/*.mp4", "photos/", "extra/take 2.mov"], out)``:

- a glob (recursive ``**`` allowed) keeps the files it matches; the output folder of
  each is its path relative to the glob's fixed prefix (``footage/``);
- a folder is walked recursively (hidden names and symlinked folders skipped); the
  output folder is the path relative to that folder;
- a file is taken as given (also a FIFO or a broken symlink: the batch reports those
  as failed inputs rather than hiding them); its output folder is its name.

The output folder (its *key*, relative to the batch output folder) keeps the relative
path, spaces and any Unicode (NFC) and replaces the suffix dot: ``day 1/clip.mp4`` ->
``day 1/clip_mp4``. Characters Windows forbids become ``_``. When two inputs would
share a key (same name under two roots), each gets ``-<8 hex of its path>`` appended.
Files inside the batch output folder are never inputs. Results are de-duplicated by
real path and sorted by key.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from facecast.pipelines.batch.jobs import BatchUsageError
from facecast.pipelines.batch.manifest import InputFacts

#: Names at the top of the output folder that belong to the batch layer.
RESERVED_NAMES = frozenset({"manifest.sqlite", "manifest.sqlite-wal", "manifest.sqlite-shm"})
_FORBIDDEN = re.compile(r'[\x00-\x1f<>:"\\|?*]')


class InputError(OSError):
    """An input path exists but is no readable regular file (a FIFO, a device, a broken link)."""


@dataclass(frozen=True)
class BatchInput:
    """One input file: absolute ``path`` and ``key``, its output folder relative to the batch output."""

    path: Path
    key: str


def expand_inputs(patterns: Sequence[str | os.PathLike], output_dir: str | os.PathLike) -> list[BatchInput]:
    """Inputs named by ``patterns`` (globs, folders, files); :class:`BatchUsageError` when none."""
    out = Path(os.path.realpath(output_dir))
    found: dict[str, tuple[Path, Path]] = {}  # real path -> (absolute path, root)
    for pattern in patterns:
        for path, root in _expand_one(str(pattern)):
            real = os.path.realpath(path)
            if Path(real).is_relative_to(out) or os.path.abspath(path).startswith(f"{out}{os.sep}"):
                continue
            found.setdefault(real, (path, root))
    if not found:
        shown = ", ".join(repr(str(p)) for p in patterns) or "nothing"
        raise BatchUsageError(f"no input files matched {shown}")
    pairs = sorted(found.values(), key=lambda pair: str(pair[0]))
    # a pattern that climbs out of its root (``*/../..``) names its files by their own names: a key never
    # holds "..", so no output lands outside the batch folder
    keys = assign_keys([(path, PurePosixPath(*path.relative_to(root).parts) if path.is_relative_to(root)
                         else PurePosixPath(path.name)) for path, root in pairs])
    found_inputs = [BatchInput(path, key) for (path, _), key in zip(pairs, keys, strict=True)]
    return sorted(found_inputs, key=lambda item: item.key)


def _expand_one(pattern: str) -> Iterable[tuple[Path, Path]]:
    """``(absolute path, root)`` of every file ``pattern`` names."""
    if glob.has_magic(pattern):
        root = _glob_root(pattern)
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(os.path.abspath(match))
            if path.is_dir() and not path.is_symlink():
                yield from ((p, root) for p in _walk(path))
            else:
                yield path, root
        return
    path = Path(os.path.abspath(pattern))
    if path.is_dir():
        yield from ((p, path) for p in _walk(path))
    elif os.path.lexists(path):
        yield path, path.parent
    else:
        raise BatchUsageError(f"{pattern}: no such file or folder")


def _glob_root(pattern: str) -> Path:
    """The folder made of the pattern's leading components without wildcards."""
    fixed = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(os.path.abspath(os.path.join(*fixed) if fixed else "."))


def _walk(folder: Path) -> Iterable[Path]:
    """Files under ``folder`` in sorted order, hidden names and symlinked folders skipped."""
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(current, name)


def output_name(relative: PurePosixPath) -> str:
    """Key of an input at ``relative`` (under its root): folders kept, suffix dot replaced."""
    parts = [_safe_part(p) for p in relative.parts[:-1]]
    name = relative.name
    stem, dot, suffix = name.rpartition(".")
    leaf = f"{stem}_{suffix}" if dot and stem else name
    parts.append(_safe_part(leaf))
    if parts[0] in RESERVED_NAMES:
        parts[0] = f"_{parts[0]}"
    return "/".join(parts)


def _safe_part(part: str) -> str:
    part = unicodedata.normalize("NFC", part)
    part = _FORBIDDEN.sub("_", part).rstrip(" .") or "_"
    return f"_{part[1:]}" if part.startswith(".") else part


def assign_keys(items: Sequence[tuple[Path, PurePosixPath]]) -> list[str]:
    """Keys for ``(absolute path, path relative to its root)``, unique and not nested in each other."""
    keys = [output_name(rel) for _, rel in items]
    counts = Counter(keys)
    prefixes = {str(parent) for key in keys for parent in PurePosixPath(key).parents}
    clash = [counts[k] > 1 or k in prefixes for k in keys]
    return [f"{key}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}" if bad else key
            for key, bad, (path, _) in zip(keys, clash, items, strict=True)]


def inspect_input(path: Path) -> tuple[InputFacts, OSError | None]:
    """Size, mtime and sha256 of ``path``, or the error that prevents reading it.

    Only regular files are opened (opening a FIFO would block the batch).
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: not a regular file ({_kind(info.st_mode)})")
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError as exc:
        if os.path.islink(path):
            return InputFacts(None, None, None), InputError(
                f"{path}: broken symbolic link to {os.readlink(path)}")
        return InputFacts(None, None, None), exc
    except OSError as exc:
        return InputFacts(None, None, None), exc
    return InputFacts(info.st_size, info.st_mtime, digest), None


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return next((name for test, name in kinds.items() if test(mode)), "not a file")
