"""Verified downloads: stream to a temporary file, check size and sha256, rename.

Nothing here runs at import time. A file that fails its check is deleted and
reported with a :class:`DownloadError`; a destination either holds the complete,
verified file or does not exist.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed, was truncated, or did not match its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, where to, and what it must hash to."""

    url: str
    dest: Path
    sha256: str


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


ProgressFn = Callable[[int], None]


def fetch(item: RemoteFile, advance: ProgressFn | None = None, timeout: float = 60.0) -> Path:
    """Download ``item`` to ``item.dest`` atomically and verify it.

    An existing destination whose hash matches is kept without a download.
    Raises :class:`DownloadError` for network errors, truncated bodies (fewer
    bytes than ``Content-Length``) and checksum mismatches; the partial file is
    removed in every failure case.
    """
    dest = Path(item.dest)
    if dest.exists() and sha256_of(dest) == item.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(item.url, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise DownloadError(f"cannot download {item.url}: {exc}") from exc
            with response:
                expected = response.headers.get("Content-Length")
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        if advance is not None:
                            advance(len(block))
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(f"download of {item.url} broke off after {received} bytes: {exc}") from exc
        if expected is not None and received != int(expected):
            raise DownloadError(
                f"download of {item.url} is truncated: {received} of {expected} bytes")
        actual = digest.hexdigest()
        if actual != item.sha256:
            raise DownloadError(
                f"checksum mismatch for {item.url}: expected sha256 {item.sha256}, got {actual}; "
                "the file was deleted, try again")
        os.replace(tmp, dest)
        return dest
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch_all(items: Sequence[RemoteFile], description: str, show_progress: bool = True) -> list[Path]:
    """Fetch several files with one progress bar (bytes); stops at the first failure."""
    if not show_progress:
        return [fetch(item) for item in items]
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    paths = []
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=None)
        for number, item in enumerate(items, 1):
            progress.update(task, description=f"{description} [{number}/{len(items)}] {item.dest.name}")
            paths.append(fetch(item, advance=lambda n: progress.advance(task, n)))
    return paths
