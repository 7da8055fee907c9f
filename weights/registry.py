"""Where facecast's assets come from: explicit path, ``$FACECAST_ASSETS``, user cache, download.

The ICT Face Model Light is resolved in this order:

1. an explicit path given by the caller (a ``.npz`` file or a folder holding one);
2. ``$FACECAST_ASSETS/ict-facekit/ict_facekit_light.npz`` (CI and tests point it at
   ``../shared/assets``);
3. the user cache: ``$FACECAST_HOME`` or ``~/.cache/facecast``;
4. a download of the original ``FaceXModel/`` files from GitHub at a pinned commit,
   each checked against the sha256 list shipped beside this file, then converted
   and cached atomically. ``FACECAST_OFFLINE=1`` forbids this step.

Nothing is resolved or downloaded at import time.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .convert import INDICES_FILE, convert_facexmodel, write_npz_atomic
from .download import DownloadError, RemoteFile, fetch_all

ICT_NPZ = "ict_facekit_light.npz"
ICT_SUBDIR = "ict-facekit"
ASSETS_ENV = "FACECAST_ASSETS"
HOME_ENV = "FACECAST_HOME"
OFFLINE_ENV = "FACECAST_OFFLINE"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{folder}/{name}"


class AssetError(RuntimeError):
    """An asset cannot be found or fetched; the message says what to do."""


@dataclass(frozen=True)
class SourceList:
    """The pinned origin of the ICT model files and their sha256 checksums."""

    repository: str
    commit: str
    folder: str
    sha256: dict[str, str]

    def url(self, name: str, base_url: str | None = None) -> str:
        if base_url is not None:
            return f"{base_url.rstrip('/')}/{name}"
        repo = self.repository.removeprefix("https://github.com/")
        return RAW_URL.format(repo=repo, commit=self.commit, folder=self.folder, name=name)


def load_source_list() -> SourceList:
    """The shipped ``ict_facekit_sources.json``."""
    text = resources.files(__package__).joinpath("ict_facekit_sources.json").read_text()
    data = json.loads(text)
    return SourceList(data["repository"], data["commit"], data["folder"], dict(data["sha256"]))


def cache_dir() -> Path:
    """``$FACECAST_HOME`` or ``~/.cache/facecast`` (not created here)."""
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser() if home else Path.home() / ".cache" / "facecast"


def _npz_in(path: Path) -> Path | None:
    for candidate in (path, path / ICT_NPZ, path / ICT_SUBDIR / ICT_NPZ):
        if candidate.is_file():
            return candidate
    return None


def resolve_ict_model(path: str | Path | None = None, download: bool | None = None,
                      base_url: str | None = None, show_progress: bool = True) -> Path:
    """Return the path of a usable ``ict_facekit_light.npz``, downloading it if needed.

    ``download=None`` means "unless ``FACECAST_OFFLINE`` is set". ``base_url``
    replaces the GitHub location (tests serve files from 127.0.0.1).
    Raises :class:`AssetError` with a one-line explanation when nothing works.
    """
    if path is not None:
        found = _npz_in(Path(path).expanduser())
        if found is None:
            raise AssetError(f"no {ICT_NPZ} at {path}")
        return found
    env = os.environ.get(ASSETS_ENV)
    if env:
        found = _npz_in(Path(env).expanduser())
        if found is None:
            raise AssetError(f"${ASSETS_ENV}={env} holds no {ICT_SUBDIR}/{ICT_NPZ}; "
                             f"fix the variable or unset it to use the cache")
        return found
    cached = cache_dir() / ICT_SUBDIR / ICT_NPZ
    if cached.is_file():
        return cached
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "") in ("", "0")
    if not download:
        raise AssetError(f"the ICT face model is not cached at {cached} and downloads are off "
                         f"({OFFLINE_ENV}); set {ASSETS_ENV} to a folder holding "
                         f"{ICT_SUBDIR}/{ICT_NPZ}, or go online once")
    return download_ict_model(cached, base_url=base_url, show_progress=show_progress)


def download_ict_model(dest: Path, base_url: str | None = None, show_progress: bool = True,
                       names: list[str] | None = None) -> Path:
    """Fetch the original FaceXModel files, verify, convert to ``dest`` (npz) atomically.

    ``names`` restricts the files fetched (tests); the conversion then uses only
    the identities/expressions present. The raw OBJ files are removed once the
    npz is written.
    """
    sources = load_source_list()
    wanted = names if names is not None else sorted(sources.sha256)
    unknown = [n for n in wanted if n not in sources.sha256]
    if unknown:
        raise AssetError(f"no checksum for {unknown}")
    raw_dir = dest.parent / "FaceXModel.download"
    items = [RemoteFile(sources.url(n, base_url), raw_dir / n, sources.sha256[n]) for n in wanted]
    try:
        fetch_all(items, "ICT Face Model", show_progress=show_progress)
    except DownloadError as exc:
        raise AssetError(f"{exc}. Check the network, or set {ASSETS_ENV} to a local copy") from exc
    identity = sorted(p.stem for p in raw_dir.glob("identity*.obj"))
    expressions = None
    if names is not None:
        listed = json.loads((raw_dir / INDICES_FILE).read_text())["expressions"]
        expressions = [e for e in listed if (raw_dir / f"{e}.obj").exists()]
    arrays = convert_facexmodel(raw_dir, identity_names=identity, expression_names=expressions)
    write_npz_atomic(arrays, dest)
    shutil.rmtree(raw_dir, ignore_errors=True)
    return dest
