"""Files of a rendered pool (:mod:`facecast.recon.learn.render_pool`) and of real face crops.

A pool folder holds ``pool.json`` (the :class:`PoolConfig` and where its textures and
backgrounds came from), ``textures.npz`` (the photo textures, ``(T, S, S, 3)`` uint8) and
``shard_00000.npz`` ... (one :class:`PoolShard` each, written atomically: a shard file
is either whole or absent, so an interrupted build resumes by rendering the missing
ones). :func:`load_pool` reads every shard as one :class:`TrainBatch`.

A real-crops file (``.npz``: ``crops (N, S, S, 3)`` uint8, ``landmarks (N, 478, 2)``
crop-normalised, ``sources``) holds unlabelled real faces, the domain critic's "real" side.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.recon.learn.inputs import CropFrame, RegressorInputs
from facecast.recon.learn.render_pool import PoolConfig, PoolShard
from facecast.recon.learn.train_data import TrainBatch
from facecast.recon.model.albedo import DEFAULT_COLOURS
from facecast.recon.model.coeffs import FaceCoeffs
from facecast.render.shading import ambient_light

MANIFEST = "pool.json"
TEXTURES = "textures.npz"
FORMAT = "facecast-render-pool-1"
_ARRAYS = ("crops", "points", "origin", "scale", "identity", "expression", "rotation", "translation", "focal",
           "principal", "texture")


class PoolError(ValueError):
    """A pool folder or real-crops file that cannot be used (the message names it)."""


def shard_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"shard_{index:05d}.npz"


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    """``np.savez`` to a temporary name beside ``path``, then rename (never half-written)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, path)
    return path


def save_shard(directory: Path, index: int, shard: PoolShard) -> Path:
    arrays = {k: getattr(shard, k) for k in _ARRAYS}
    return save_npz(shard_path(directory, index), image=np.array(shard.image), drawn=np.array(shard.drawn), **arrays)


def load_shard(path: Path) -> PoolShard:
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in _ARRAYS}
            return PoolShard(**arrays, image=int(data["image"]), drawn=int(data["drawn"]))
    except (OSError, KeyError, ValueError) as exc:
        raise _damaged(path, exc) from None


def shard_counts(path: Path) -> tuple[int, int]:
    """``(faces kept, faces drawn)`` of a shard file, read without loading its crops."""
    try:
        with np.load(path) as data:
            return len(data["scale"]), int(data["drawn"])
    except (OSError, KeyError, ValueError) as exc:
        raise _damaged(path, exc) from None


def _damaged(path: Path, exc: Exception) -> PoolError:
    return PoolError(f"pool shard {path} is damaged ({exc}); delete it and build the pool again")


@dataclass
class PoolManifest:
    """``pool.json``: the config and a description of the sources (texture photos, backgrounds)."""

    config: PoolConfig
    sources: dict

    def write(self, directory: Path) -> Path:
        text = json.dumps({"format": FORMAT, "config": self.config.to_dict(), "sources": self.sources}, indent=1)
        path = Path(directory) / MANIFEST
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
        return path

    @classmethod
    def read(cls, directory: Path) -> PoolManifest:
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise PoolError(f"{directory} is not a facecast pool (no {MANIFEST}); build one with `facecast pool`")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            return cls(PoolConfig(**data["config"]), data["sources"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PoolError(f"{path} is not a valid pool manifest ({exc})") from None


def missing_shards(directory: Path, config: PoolConfig) -> list[int]:
    """Indices of shards not yet written."""
    return [k for k in range(config.shards) if not shard_path(directory, k).is_file()]


def load_pool(directory: str | Path, crop_size: int, crop_scale: float) -> tuple[TrainBatch, PoolManifest]:
    """Every shard of a complete pool as one :class:`TrainBatch` (crops float32 in [0, 1]).

    The truth has ambient light and default albedo (the renders' light and texture are
    not in the model's albedo space), as :class:`~facecast.recon.learn.train_data.SyntheticFaces`.
    Raises :class:`PoolError` for an incomplete pool or one made for another crop.
    """
    directory = Path(directory)
    manifest = PoolManifest.read(directory)
    c = manifest.config
    if (c.crop_size, c.crop_scale) != (crop_size, crop_scale):
        raise PoolError(f"pool {directory} holds {c.crop_size} px crops at scale {c.crop_scale}; the regressor "
                        f"takes {crop_size} px at {crop_scale}")
    missing = missing_shards(directory, c)
    if missing:
        raise PoolError(f"pool {directory} is incomplete: {len(missing)} of {c.shards} shards missing "
                        f"(resume with `facecast pool {directory}`)")
    shards = [load_shard(shard_path(directory, k)) for k in range(c.shards)]

    def cat(name: str) -> torch.Tensor:
        return torch.as_tensor(np.concatenate([getattr(s, name) for s in shards]))

    crops = cat("crops").permute(0, 3, 1, 2).float().div_(255.0)
    points = cat("points").float()
    count = points.shape[0]
    image_size = torch.tensor([[c.image, c.image]] * count)
    frame = CropFrame(cat("origin").float(), cat("scale").float(), crop_size, image_size)
    albedo = torch.as_tensor(DEFAULT_COLOURS, dtype=torch.float32)[None].expand(count, -1, -1).clone()
    truth = FaceCoeffs(cat("identity").float(), cat("expression").float(), cat("rotation").float(),
                       cat("translation").float(), cat("focal").float(), cat("principal").float(),
                       ambient_light(count), albedo)
    return TrainBatch(truth, RegressorInputs(crops, frame.normalise(points), frame), points), manifest


@dataclass
class RealCrops:
    """Unlabelled real faces: crops ``(N, 3, S, S)`` float in [0, 1], landmarks ``(N, 478, 2)`` crop-normalised."""

    crops: torch.Tensor
    landmarks: torch.Tensor
    sources: list[str]

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def save(self, path: str | Path) -> Path:
        crops = (self.crops.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
        return save_npz(Path(path), crops=crops, landmarks=self.landmarks.numpy().astype(np.float32),
                        sources=np.array(self.sources))

    @classmethod
    def load(cls, path: str | Path, crop_size: int) -> RealCrops:
        path = Path(path)
        if not path.is_file():
            raise PoolError(f"real crops file {path} does not exist")
        try:
            with np.load(path) as data:
                crops, landmarks, sources = data["crops"], data["landmarks"], [str(s) for s in data["sources"]]
        except (OSError, KeyError, ValueError) as exc:
            raise PoolError(f"{path} is not a real-crops file ({exc})") from None
        if crops.ndim != 4 or crops.shape[1:] != (crop_size, crop_size, 3) or len(crops) != len(landmarks):
            raise PoolError(f"{path} holds crops of shape {crops.shape[1:]}; the regressor takes "
                            f"({crop_size}, {crop_size}, 3)")
        return cls(torch.as_tensor(crops).permute(0, 3, 1, 2).float().div_(255.0), torch.as_tensor(landmarks),
                   sources)
