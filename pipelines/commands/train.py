"""``facecast train``: a JSON config -> a training run -> regressor weights (.safetensors).

Only this module touches the filesystem for a run (config, texture, checkpoint,
weights); the loop itself is :func:`facecast.recon.learn.training.train`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facecast.pipelines.errors import UserError

ASTRONAUT = "astronaut (scikit-image sample, baked with facecast reconstruct)"


@dataclass
class TrainSummary:
    """What a run wrote: the weights, the checkpoint, the step reached and the last progress line."""

    weights: Path
    checkpoint: Path | None
    step: int
    last_line: str


def check_output_file(path: Path, suffix: str, what: str) -> Path:
    """Fail early unless ``path`` is a writable ``suffix`` file name (parent folders are created)."""
    if path.suffix.lower() != suffix:
        raise UserError(f"{what} must be written as {suffix}, got {path.name}")
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {path}: cannot create folder {path.parent} ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: folder {path.parent} is not writable")
    return path


def check_weights_output(path: Path) -> Path:
    """Fail early unless ``path`` is a writable ``.safetensors`` file name (parent folders are created)."""
    return check_output_file(path, ".safetensors", "weights")


def load_texture(path: str | Path) -> np.ndarray:
    """An ICT UV texture image -> ``(S, S, 3)`` uint8 RGB (square, S >= 512)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"texture {path} does not exist")
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"texture {path} is not a readable image ({exc})") from None
    if pixels.shape[0] != pixels.shape[1] or pixels.shape[0] < 512:
        raise UserError(f"texture {path} must be square and at least 512 px, got {pixels.shape[1]}x{pixels.shape[0]}")
    return np.ascontiguousarray(pixels)


def run_training(config_path: Path, output: Path, resume: bool, assets: Path | None = None,
                 log: Callable[[str], None] = print, threads: int = 1) -> TrainSummary:
    """Train as ``config_path`` says and write ``output``.

    The checkpoint is ``config.checkpoint`` or, when unset, ``output`` with the suffix
    ``.ckpt``; ``resume`` continues from it when it exists. threads: torch intra-op
    threads (the CPU-sized networks run 10-20x faster with 1 thread than with many on a
    busy machine).
    """
    from facecast.recon.fit.landmark_fit import threads as torch_threads
    from facecast.recon.learn.checkpoints import training_metadata
    from facecast.recon.learn.regressor import save_regressor
    from facecast.recon.learn.train_config import load_train_config
    from facecast.recon.learn.training import train
    from facecast.recon.model.morphable import MorphableModel

    config = load_train_config(config_path)
    check_weights_output(output)
    if config.checkpoint is None:
        config = replace(config, checkpoint=str(output.with_suffix(".ckpt")))
    checkpoint = Path(config.checkpoint)
    if not resume and checkpoint.exists():
        raise UserError(f"checkpoint {checkpoint} exists: pass --resume to continue it, or delete it to start over")
    texture, source = None, "none"
    if config.needs_renders and config.texture is not None:
        texture, source = load_texture(config.texture), str(config.texture)
    model = MorphableModel.load(assets)
    if config.needs_renders and texture is None:
        from facecast.recon.photo import astronaut_texture

        log("baking the astronaut texture for the synthetic renders ...")
        texture, source = astronaut_texture(model), ASTRONAUT
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    with torch_threads(threads):
        result = train(config, model, texture, log=log, resume=resume)
    save_regressor(result.regressor, output, training_metadata(config, result, texture, source))
    last = result.history[-1].line(config.steps) if result.history else f"nothing to do at step {result.step}"
    return TrainSummary(output, checkpoint, result.step, last)
