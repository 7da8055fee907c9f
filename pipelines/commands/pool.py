"""``facecast pool`` and ``facecast crops``: the image branch's training data.

``pool``: photos -> a rendered synthetic pool (:mod:`facecast.recon.learn.render_pool`): the
photos' faces are baked into ICT textures (the project's own reconstruction) and the photos
serve as backgrounds; shards are rendered by ``workers`` processes and written one file
each, so an interrupted build resumes where it stopped (run the same command again).

``crops``: real photos and videos -> unlabelled real face crops (the domain critic's real side).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.pipelines.errors import UserError

BACKGROUND_SIDE = 512  # backgrounds are kept at most this large (they are cropped and resized to the render)
_WORKER: dict = {}


@dataclass
class PoolSummary:
    """A pool build: faces kept of drawn, shards rendered now, textures, seconds."""

    directory: Path
    kept: int
    drawn: int
    rendered: int
    textures: int
    seconds: float


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _photo(path: Path) -> np.ndarray:
    from facecast.pipelines.media import read_image

    return read_image(path)


def bake_textures(model, photos: list[Path], log: Callable[[str], None]) -> tuple[np.ndarray, list[str]]:
    """``(T, 512, 512, 3)`` uint8 ICT textures of the photos' largest faces, and the names of those used."""
    from facecast.recon.fit.texture import TextureConfig, bake_texture
    from facecast.recon.photo import PhotoReconstructor

    textures, used = [], []
    with PhotoReconstructor(model) as photo:
        for path in photos:
            try:
                image = _photo(path)
                result = photo.reconstruct(image, str(path))
            except ValueError as exc:  # unreadable photo or no face: skipped, not fatal
                log(f"texture: skipped {path.name} ({exc})")
                continue
            textures.append(bake_texture(model, result.coeffs, image, TextureConfig(size=512)))
            used.append(path.name)
    if not textures:
        raise UserError("no texture could be baked: none of the photos has a face")
    return np.stack(textures), used


def _exit_with_parent(parent: int) -> None:
    """A daemon thread ending this worker when the process that started it is gone (killed, not joined)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init_worker(directory: str, assets: str | None, parent: int) -> None:
    import torch

    from facecast.recon.landmarks.mediapipe_mesh import MediaPipeDetector
    from facecast.recon.learn.pool_files import TEXTURES, PoolManifest
    from facecast.recon.learn.regressor import RegressorConfig
    from facecast.recon.learn.render_pool import ShardRenderer
    from facecast.recon.learn.synthetic import SyntheticRenderer
    from facecast.recon.model.morphable import MorphableModel

    _exit_with_parent(parent)
    torch.set_num_threads(1)
    manifest = PoolManifest.read(Path(directory))
    model = MorphableModel.load(assets)
    with np.load(Path(directory) / TEXTURES) as data:
        textures = [SyntheticRenderer(model, t) for t in data["textures"]]
    backgrounds = []
    for name in manifest.sources["backgrounds"]:
        image = _photo(Path(name))
        scale = BACKGROUND_SIDE / max(image.shape[:2])
        if scale < 1:
            import cv2

            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        backgrounds.append(image)
    _WORKER["directory"] = Path(directory)
    _WORKER["renderer"] = ShardRenderer(manifest.config, model, textures, backgrounds, MediaPipeDetector(),
                                        RegressorConfig().anchor)


def _render_shard(index: int) -> tuple[int, int, int]:
    from facecast.recon.learn.pool_files import save_shard

    shard = _WORKER["renderer"].render(index)
    save_shard(_WORKER["directory"], index, shard)
    return index, len(shard), shard.drawn


def build_pool(directory: Path, photos: list[Path], config, workers: int = 1, assets: Path | None = None,
               log: Callable[[str], None] = print, progress: bool = True) -> PoolSummary:
    """Build (or resume) the pool in ``directory`` from ``photos`` with :class:`PoolConfig` ``config``."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from facecast.pipelines.progress import progress_bar
    from facecast.recon.learn.pool_files import (
        TEXTURES,
        PoolManifest,
        missing_shards,
        save_npz,
        shard_counts,
        shard_path,
    )
    from facecast.recon.model.morphable import MorphableModel

    start = time.perf_counter()
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    directory = Path(directory)
    if (directory / "pool.json").is_file():
        manifest = PoolManifest.read(directory)
        if manifest.config != config:
            raise UserError(f"pool {directory} was started with another config; use the same options to resume "
                            f"it, or another folder")
        log(f"resuming pool {directory}")
    else:
        if not photos:
            raise UserError("no photos: give photos whose faces texture the renders and which serve as backgrounds")
        missing = [str(p) for p in photos if not Path(p).is_file()]
        if missing:
            raise UserError(f"photo {missing[0]} does not exist")
        directory.mkdir(parents=True, exist_ok=True)
        model = MorphableModel.load(assets)
        log(f"baking textures from {len(photos)} photos ...")
        textures, used = bake_textures(model, [Path(p) for p in photos], log)
        save_npz(directory / TEXTURES, textures=textures)
        sources = {"textures": used, "backgrounds": [str(Path(p).resolve()) for p in photos],
                   "sha256": {Path(p).name: _digest(Path(p)) for p in photos}}
        PoolManifest(config, sources).write(directory)
    todo = missing_shards(directory, config)
    log(f"{config.shards - len(todo)} of {config.shards} shards present; rendering {len(todo)} "
        f"with {workers} worker(s)")
    if todo:
        context = get_context("spawn")  # torch and MediaPipe threads do not survive fork
        initargs = (str(directory), None if assets is None else str(assets), os.getpid())
        with progress_bar("pool", ("{task.fields[kept]}",), enabled=progress) as bar, \
                ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
            task = bar.add_task("pool", total=len(todo), kept="")
            kept = drawn = 0
            for _, k, d in pool.map(_render_shard, todo):
                kept, drawn = kept + k, drawn + d
                bar.update(task, advance=1, kept=f"kept {kept}/{drawn}")
    counts = [shard_counts(shard_path(directory, k)) for k in range(config.shards)]
    kept, drawn = (sum(c) for c in zip(*counts))
    texture_count = len(PoolManifest.read(directory).sources["textures"])
    return PoolSummary(directory, kept, drawn, len(todo), texture_count, time.perf_counter() - start)


def collect_crops(inputs: list[Path], output: Path, every: int = 5, max_frames: int | None = None,
                  log: Callable[[str], None] = print) -> int:
    """Crops of the largest face of every photo and every ``every``-th video frame -> ``output`` (.npz)."""
    import torch

    from facecast.pipelines.commands.label import media_frames
    from facecast.pipelines.commands.train import check_output_file
    from facecast.pipelines.errors import is_user_error
    from facecast.recon.landmarks.detector import sort_faces
    from facecast.recon.landmarks.mediapipe_mesh import MediaPipeDetector
    from facecast.recon.learn.inputs import prepare_inputs
    from facecast.recon.learn.pool_files import RealCrops
    from facecast.recon.learn.regressor import RegressorConfig

    if every < 1:
        raise UserError(f"--every must be >= 1, got {every}")
    if not inputs:
        raise UserError("no inputs: give photos and/or videos")
    check_output_file(output, ".npz", "crops")
    r = RegressorConfig()
    crops, landmarks, sources = [], [], []
    with MediaPipeDetector() as detector:
        for path in inputs:
            try:
                for source, image in media_frames(Path(path), every, max_frames):
                    found = detector.detect(image)
                    if found:
                        prepared = prepare_inputs([sort_faces(found)[0]], [image], r.crop_size, r.crop_scale)
                        crops.append(prepared.crops)
                        landmarks.append(prepared.landmarks)
                        sources.append(source)
            except Exception as exc:  # one unreadable input must not lose the others
                if not is_user_error(exc):
                    raise
                log(f"skipped {path}: {exc}")
    if not crops:
        raise UserError("no face found in any input; nothing written")
    RealCrops(torch.cat(crops), torch.cat(landmarks), sources).save(output)
    log(f"wrote {output}: {len(crops)} real face crops from {len(inputs)} inputs")
    return len(crops)
