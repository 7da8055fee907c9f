"""The rendered pool: deterministic shards seen through the real MediaPipe detector, their files,
training on them with the domain critic, and an image branch grown from landmark-only weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from facecast.recon.fit.tracking import FrameLandmarks, regress_frames
from facecast.recon.landmarks.correspondence import mediapipe478_mapping
from facecast.recon.landmarks.detector import faces_from_points
from facecast.recon.landmarks.mediapipe_mesh import MediaPipeDetector
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.learn.checkpoints import grow_image_branch
from facecast.recon.learn.inputs import CropFrame, prepare_inputs
from facecast.recon.learn.losses import LossWeights
from facecast.recon.learn.pool_files import PoolError, PoolManifest, RealCrops, load_pool, save_shard, shard_path
from facecast.recon.learn.regressor import Regressor, RegressorConfig
from facecast.recon.learn.render_pool import PoolConfig, ShardRenderer, draw_expressions, mirror_partners
from facecast.recon.learn.synthetic import SyntheticRenderer
from facecast.recon.learn.train_config import TrainConfig, TrainConfigError
from facecast.recon.learn.train_data import flat_texture
from facecast.recon.learn.training import train
from facecast.recon.model.coeffs import PIXEL_OFFSET, project_points

TINY = RegressorConfig(crop_size=32, widths=(8, 16, 24, 32), blocks=(1, 1, 1), features=64, landmark_hidden=128)
CONFIG = PoolConfig(faces=12, shard=6, crop_size=32, yaw=30.0, pitch=15.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photos(shared_dir) -> list[np.ndarray]:
    files = sorted((shared_dir / "media" / "lfpw68-train").glob("*.jpg"))[1:4]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


@pytest.fixture(scope="module")
def pool(tmp_path_factory, model, photos):
    """A two-shard pool folder rendered in-process, and its renderer."""
    directory = tmp_path_factory.mktemp("pool")
    with MediaPipeDetector() as detector:
        renderer = ShardRenderer(CONFIG, model, [SyntheticRenderer(model, flat_texture(512, noise=20.0))], photos,
                                 detector, TINY.anchor)
        shards = [renderer.render(k) for k in range(CONFIG.shards)]
        again = renderer.render(0)
    for k, shard in enumerate(shards):
        save_shard(directory, k, shard)
    PoolManifest(CONFIG, {"textures": ["flat"], "backgrounds": ["lfpw 1-3"]}).write(directory)
    return directory, shards, again


def test_shards_are_deterministic_and_hold_the_detectors_points(pool, model):
    _, shards, again = pool
    first = shards[0]
    for name in ("crops", "points", "expression", "rotation", "translation"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name), err_msg=name)
    assert all(len(s) >= 5 and s.drawn == 6 for s in shards), [len(s) for s in shards]
    # the points are MediaPipe's on the render: near the true projected points, not equal to them
    sparse = SparseLandmarks.build(model, mediapipe478_mapping())
    with torch.no_grad():
        true = project_points(sparse.evaluate(torch.as_tensor(first.identity), torch.as_tensor(first.expression),
                                              torch.as_tensor(first.rotation), torch.as_tensor(first.translation)),
                              torch.as_tensor(first.focal), torch.as_tensor(first.principal)).numpy()
    size = np.linalg.norm(true.max(1) - true.min(1), axis=-1)
    error = np.median(np.linalg.norm(first.points - true, axis=-1), axis=1) / size
    assert (error < 0.05).all() and (error > 1e-4).all(), error
    # the crop frame is the one inference builds from those points
    frame = CropFrame.around(torch.as_tensor(first.points), torch.full((len(first), 2), CONFIG.image), 32, 1.6)
    np.testing.assert_allclose(frame.origin.numpy(), first.origin, atol=1e-4)
    assert first.crops.shape == (len(first), 32, 32, 3) and first.crops.dtype == np.uint8
    assert first.crops.std() > 20  # a face over a photo, not a blank


def test_expressions_cover_every_channel_with_symmetric_pairs(model):
    names = list(model.expression_names)
    partners = mirror_partners(names)
    assert names[partners[names.index("eyeBlinkLeft")]] == "eyeBlinkRight"
    assert names[partners[names.index("eyeLookInLeft")]] == "eyeLookOutRight"
    assert partners[names.index("jawLeft")] == -1
    drawn = draw_expressions(4000, PoolConfig(), partners, np.random.default_rng(0))
    assert (drawn.max(0) > 0.9).all()  # every channel reaches high values
    neutral = (drawn == 0).all(1).mean()
    assert 0.07 < neutral < 0.13
    left, right = drawn[:, names.index("eyeBlinkLeft")], drawn[:, names.index("eyeBlinkRight")]
    both = ((left > 0) & (right > 0)).sum() / max(1, ((left > 0) | (right > 0)).sum())
    assert both > 0.4  # blinks mostly come in pairs, as on real faces


def test_load_pool_gives_a_training_batch_and_refuses_incomplete_or_mismatched_pools(pool, tmp_path):
    directory, shards, _ = pool
    batch, manifest = load_pool(directory, 32, 1.6)
    assert manifest.config == CONFIG and batch.batch_size == sum(len(s) for s in shards)
    assert batch.inputs.crops.shape == (batch.batch_size, 3, 32, 32) and batch.inputs.crops.max() <= 1.0
    np.testing.assert_allclose(batch.points[:len(shards[0])].numpy(), shards[0].points)
    with pytest.raises(PoolError, match="32 px crops"):
        load_pool(directory, 96, 1.6)
    PoolManifest(CONFIG, {}).write(tmp_path)
    save_shard(tmp_path, 0, shards[0])
    with pytest.raises(PoolError, match="1 of 2 shards missing"):
        load_pool(tmp_path, 32, 1.6)
    shard_path(tmp_path, 1).write_bytes(b"not a shard")
    with pytest.raises(PoolError, match="damaged"):
        load_pool(tmp_path, 32, 1.6)


def _real_crops(path, photos) -> RealCrops:
    with MediaPipeDetector() as detector:
        parts = [prepare_inputs(detector.detect(p)[:1], [p], 32, 1.6) for p in photos]
    crops = RealCrops(torch.cat([p.crops for p in parts]), torch.cat([p.landmarks for p in parts]), ["a", "b", "c"])
    crops.save(path)
    return crops


def test_training_on_the_pool_with_the_domain_critic(pool, tmp_path, model, photos):
    directory, _, _ = pool
    real = tmp_path / "real.npz"
    saved = _real_crops(real, photos)
    loaded = RealCrops.load(real, 32)
    assert torch.allclose(loaded.crops, saved.crops, atol=1 / 255) and loaded.sources == ["a", "b", "c"]
    config = TrainConfig(steps=4, batch=4, log_every=1, regressor=TINY, render_pool=str(directory),
                         real_crops=str(real), weights=LossWeights(domain=0.1))
    assert not config.needs_renders  # the pool brings the crops
    lines: list[str] = []
    result = train(config, model, None, log=lines.append)
    last = result.history[-1]
    assert all(s.domain_critic > 0 for s in result.history) and np.isfinite(last.domain)
    assert "dom_g" in lines[-1] and "dom_critic" in lines[-1]
    with pytest.raises(TrainConfigError, match="weights.domain needs"):
        TrainConfig(regressor=TINY, render_pool=str(directory), weights=LossWeights(domain=0.1))
    with pytest.raises(TrainConfigError, match="landmark_dropout"):
        TrainConfig(regressor=replace(TINY, image_branch=False), landmark_dropout=0.3)
    dropped = train(replace(config, steps=2, landmark_dropout=0.5, weights=LossWeights()), model, None,
                    log=lines.append)
    assert np.isfinite(dropped.history[-1].total)
    with pytest.raises(TrainConfigError, match="32 px crops"):
        train(replace(config, regressor=replace(TINY, crop_size=48)), model, None, log=lines.append)


def test_an_image_branch_grown_from_landmark_weights_first_answers_as_they_do():
    torch.manual_seed(0)
    start = Regressor(replace(TINY, image_branch=False)).eval()
    with torch.no_grad():
        for p in start.parameters():
            p.add_(0.05 * torch.randn_like(p))
    grown = Regressor(TINY).eval()
    grow_image_branch(grown, start)
    crops, landmarks = torch.rand(3, 3, 32, 32), 0.5 * torch.randn(3, 478, 2)
    with torch.no_grad():
        torch.testing.assert_close(grown(crops, landmarks), start(None, landmarks))
        assert not torch.allclose(grown(crops, landmarks), Regressor(TINY).eval()(crops, landmarks))


def test_tracker_frames_carry_the_crops_an_image_branch_needs(photos):
    regressor = Regressor(TINY).eval()
    image = photos[0]
    with MediaPipeDetector() as detector:
        face = detector.detect(image)[0]
    crop = prepare_inputs([face], [image], 32, 1.6).crops[0]
    points = torch.tensor(face.points + PIXEL_OFFSET, dtype=torch.float32)
    frame = FrameLandmarks(0, 0.0, image.shape[:2], points, None, crop)
    tracked = regress_frames(regressor, [frame], torch.float32)
    direct = regressor.predict(faces_from_points((points.double() - PIXEL_OFFSET).numpy()[None]), [image])
    torch.testing.assert_close(tracked.expression, direct.expression)
    torch.testing.assert_close(tracked.rotation, direct.rotation)
    with pytest.raises(ValueError, match="needs its face crop"):
        regress_frames(regressor, [replace(frame, crop=None)], torch.float32)
