"""What a training run starts from and writes: initial weights (grown into an image branch when
needed), resumable checkpoints, and the description of the run stored with the weights."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from facecast.recon.learn.regressor import Regressor
from facecast.recon.learn.train_config import TrainConfig, TrainConfigError


def start_from(regressor: Regressor, path: str | Path) -> None:
    """Load the weights of ``path`` into ``regressor`` (:class:`TrainConfigError` if they do not fit)."""
    from facecast.recon.learn.regressor import WeightsError, load_regressor

    try:
        start = load_regressor(path)
    except (WeightsError, OSError, ValueError) as exc:
        raise TrainConfigError(f"init_weights: {exc}") from None
    if start.config == regressor.config:
        regressor.load_state_dict(start.state_dict())
    elif replace(start.config, image_branch=True) == regressor.config:
        grow_image_branch(regressor, start)
    else:
        raise TrainConfigError(f"init_weights: {path} was trained with another regressor config "
                               f"({start.config.to_json()})")


def grow_image_branch(regressor: Regressor, start: Regressor) -> None:
    """Start an image + landmark regressor from a landmark-only one: the landmark branch, the head and
    the fusion's landmark columns are copied; the fusion's image columns start at zero, so the grown
    regressor first answers as ``start`` does and the image branch adds what it learns."""
    state = {k: v for k, v in start.state_dict().items() if not k.startswith("fuse.")}
    missing, unexpected = regressor.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(("crop_encoder.", "fuse.")) for k in missing):
        raise TrainConfigError("init_weights: cannot grow these weights into an image-branch regressor")
    features = regressor.config.features
    with torch.no_grad():
        weight = regressor.fuse[0].weight
        weight[:, :features] = 0.0
        weight[:, features:] = start.fuse[0].weight
        regressor.fuse[0].bias.copy_(start.fuse[0].bias)


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def texture_digest(texture: np.ndarray | None) -> str:
    """Short sha256 of a texture's pixels (``"none"`` without one)."""
    if texture is None:
        return "none"
    return hashlib.sha256(np.ascontiguousarray(texture).tobytes()).hexdigest()[:16]


def training_metadata(config: TrainConfig, result, texture: np.ndarray | None,
                      texture_source: str) -> dict[str, str]:
    """Strings for the weights file: what data trained it and how."""
    data = asdict(config.data)
    real = config.real_coefficients or "samples of the synthetic prior"
    pseudo = ""
    if config.pseudo_labels is not None:
        from facecast.recon.learn.pseudo_labels import PseudoLabels, describe

        pseudo = (f"; {config.pseudo_fraction:g} of each batch real faces with fitted pseudo-labels: "
                  f"{describe(PseudoLabels.load(config.pseudo_labels))}")
    if config.init_weights is not None:
        pseudo += f"; started from {config.init_weights}"
    if config.render_pool is not None:
        from facecast.recon.learn.pool_files import PoolManifest

        manifest = PoolManifest.read(Path(config.render_pool))
        pseudo += (f"; render pool {config.render_pool}: {manifest.config.to_dict()}, textures and backgrounds "
                   f"{manifest.sources}")
    if config.real_crops is not None:
        pseudo += f"; domain critic real side: {config.real_crops}"
    renders = (f"crops rendered with texture {texture_source} (sha256 {texture_digest(texture)})"
               if config.needs_renders else "no renders (landmark branch only)")
    last = result.history[-1] if result.history else None
    return {
        "trained_on": (f"synthetic ICT Face Model Light faces ({data}); {renders}; critic real samples: {real}; "
                       f"pool of {config.pool_size or 'fresh'} faces{pseudo}"),
        "train_config": config.to_json(),
        "steps": str(result.step),
        "final_losses": "" if last is None else last.line(config.steps),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
