"""Regressor training: a CPU smoke run that learns, exact resume, synthetic data, critics, configs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from facecast.recon.learn.checkpoints import load_checkpoint
from facecast.recon.learn.critics import (
    CoefficientCritic,
    FittedCoefficients,
    PatchCritic,
    PriorCoefficients,
    critic_hinge_loss,
    generator_hinge_loss,
    r1_penalty,
)
from facecast.recon.learn.losses import LossWeights, PoseTargets
from facecast.recon.learn.regressor import RegressorConfig
from facecast.recon.learn.train_config import TrainConfig, TrainConfigError, load_train_config, train_config_from_dict
from facecast.recon.learn.train_data import SyntheticConfig, SyntheticFaces, flat_texture
from facecast.recon.learn.training import train

TINY = RegressorConfig(crop_size=32, widths=(8, 16, 24, 32), blocks=(1, 1, 1), features=64, landmark_hidden=128)


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    return flat_texture(512, noise=20.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _quiet(_: str) -> None:
    pass


def test_smoke_training_learns_a_handful_of_faces(model, texture):
    """8 rendered faces, 60 steps of both branches + critic: supervised + landmark losses fall > 2x."""
    config = TrainConfig(steps=60, batch=8, pool_size=8, lr=3e-3, log_every=10, regressor=TINY)
    lines: list[str] = []
    result = train(config, model, texture, log=lines.append)
    first, last = result.history[0], result.history[-1]
    before, after = first.supervised + first.landmark, last.supervised + last.landmark
    assert after < 0.5 * before, (before, after)
    assert last.landmark < 0.3 * first.landmark and last.pose < 0.3 * first.pose, (first, last)
    assert result.step == 60 and len(lines) == 6
    assert all(k in lines[-1] for k in ("step 60/60", "sup", "lmk", "adv_g", "critic", "photo"))
    assert last.critic != 0.0  # the critic was trained


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, model):
    base = TrainConfig(steps=6, batch=4, lr=3e-3, checkpoint_every=2, log_every=100,
                       regressor=replace(TINY, image_branch=False), weights=LossWeights(adversarial=0.1))
    whole = train(replace(base, checkpoint=str(tmp_path / "whole.ckpt")), model, log=_quiet)
    path = tmp_path / "part.ckpt"
    part = replace(base, checkpoint=str(path))
    first = train(part, model, log=_quiet, stop_at=3)
    assert first.step == 3 and load_checkpoint(path)["step"] == 3
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
    lines: list[str] = []
    rest = train(part, model, log=lines.append, resume=True)
    assert lines[0].startswith(f"resumed from {path} at step 3")
    assert [s.step for s in rest.history] == [4, 5, 6]
    for a, b in zip(rest.history, whole.history[3:]):
        assert (a.total, a.critic) == (b.total, b.critic)
    for name, tensor in whole.regressor.state_dict().items():
        assert torch.equal(tensor, rest.regressor.state_dict()[name]), name
    with pytest.raises(TrainConfigError, match="lr differ"):
        train(replace(part, lr=1e-2), model, log=_quiet, resume=True)


def test_adversarial_weight_zero_trains_no_critic(model):
    config = TrainConfig(steps=2, batch=2, log_every=1, regressor=replace(TINY, image_branch=False),
                         weights=LossWeights(adversarial=0.0))
    result = train(config, model, log=_quiet)
    assert all(s.critic == 0.0 and s.adversarial == 0.0 for s in result.history)


def test_photometric_and_patch_critic_terms_run(model, texture):
    config = TrainConfig(steps=2, batch=2, pool_size=2, log_every=1, regressor=TINY,
                         weights=LossWeights(photometric=1.0, image_adversarial=0.1))
    stats = train(config, model, texture, log=_quiet).history[-1]
    assert 0.0 < stats.photometric < 3.0 and stats.image_adversarial != 0.0


def test_renders_need_a_texture(model):
    with pytest.raises(TrainConfigError, match="texture is needed"):
        train(TrainConfig(steps=1, batch=1, regressor=TINY), model, None, log=_quiet)


def test_synthetic_batches_match_the_prior_and_the_crop(model, texture):
    from facecast.recon.landmarks.correspondence import mediapipe478_mapping
    from facecast.recon.landmarks.sparse import SparseLandmarks
    from facecast.recon.learn.synthetic import SyntheticRenderer

    sparse = SparseLandmarks.build(model, mediapipe478_mapping())
    data = SyntheticFaces(sparse, SyntheticRenderer(model, texture), SyntheticConfig(pixel_noise=0.0), 32, 1.6,
                          1.2, TINY.anchor)
    batch = data.sample(6, torch.Generator().manual_seed(0))
    again = data.sample(6, torch.Generator().manual_seed(0))
    assert torch.equal(batch.inputs.crops, again.inputs.crops)  # reproducible
    assert batch.inputs.crops.shape == (6, 3, 32, 32) and batch.points.shape == (6, 478, 2)
    assert ((batch.truth.expression > 0).sum(1) == 4).all()
    assert float(batch.inputs.landmarks.abs().max()) < 1.0  # faces lie inside their crops
    # the crop-relative pose of the truth: anchor near the crop centre, depth near the reference
    pose = PoseTargets.from_truth(batch.truth, batch.inputs.frame, TINY)
    assert float(pose.position.abs().max()) < 0.4 and float(pose.log_depth.abs().max()) < 0.5
    # the face covers the middle of the crop: it differs from the flat background there
    centre, corner = batch.inputs.crops[:, :, 14:18, 14:18], batch.inputs.crops[:, :, :2, :2]
    assert float((centre.mean((2, 3)) - corner.mean((2, 3))).abs().sum(1).min()) > 0.02


def test_critics_losses_and_real_samples(tmp_path):
    critic = CoefficientCritic(hidden=32)
    expression, identity = torch.rand(5, 53), torch.randn(5, 100)
    scores = critic(expression, identity)
    assert scores.shape == (5, 3)
    assert hasattr(critic.expression[0], "parametrizations")  # spectral norm
    with pytest.raises(ValueError, match=r"identity must have shape \(5, 100\)"):
        critic(expression, identity[:, :99])
    assert PatchCritic(8)(torch.rand(2, 3, 32, 32)).shape == (2, 1, 4, 4)
    assert float(critic_hinge_loss(torch.full((4,), 2.0), torch.full((4,), -2.0))) == 0.0
    assert float(critic_hinge_loss(torch.zeros(4), torch.zeros(4))) == 2.0
    assert float(generator_hinge_loss(torch.tensor([1.0, 3.0]))) == -2.0
    real = [expression.clone().requires_grad_(True), identity.clone().requires_grad_(True)]
    assert float(r1_penalty(critic(*real), real).detach()) > 0
    gen = torch.Generator().manual_seed(0)
    e, i = PriorCoefficients().sample(7, gen)
    assert e.shape == (7, 53) and i.shape == (7, 100) and ((e > 0).sum(1) == 4).all()
    np.savez(tmp_path / "fit.npz", expression=np.random.rand(3, 53), identity=np.random.randn(3, 100))
    e, i = FittedCoefficients.load(tmp_path / "fit.npz").sample(10, gen)
    assert e.shape == (10, 53) and i.shape == (10, 100)
    (tmp_path / "fit.json").write_text(json.dumps([{"expression": [0.1] * 53, "identity": [0.0] * 100}]))
    assert FittedCoefficients.load(tmp_path / "fit.json").expression.shape == (1, 53)
    (tmp_path / "bad.json").write_text(json.dumps([{"expression": [0.1] * 52, "identity": [0.0] * 100}]))
    with pytest.raises(ValueError, match=r"expression \(N, 53\)"):
        FittedCoefficients.load(tmp_path / "bad.json")


def test_train_config_json_round_trip_and_errors(tmp_path):
    config = train_config_from_dict({"steps": 10, "weights": {"adversarial": 0},
                                     "regressor": {"widths": [8, 16, 24], "blocks": [1, 2]},
                                     "data": {"depth": [50, 60]}})
    assert config.steps == 10 and config.weights.adversarial == 0.0
    assert config.regressor.widths == (8, 16, 24) and config.data.depth == (50.0, 60.0)
    assert train_config_from_dict(json.loads(config.to_json())) == config
    path = tmp_path / "cfg.json"
    path.write_text(config.to_json())
    assert load_train_config(path) == config
    cases = [
        ({"stepz": 3}, r"unknown key\(s\) \['stepz'\] in the config; known: \[.*'steps'"),
        ({"weights": {"adversarail": 0.1}}, r"unknown key\(s\) \['adversarail'\] in weights"),
        ({"steps": "10"}, "steps must be int"),
        ({"steps": 2.5}, "steps must be int"),
        ({"lr": True}, "lr must be float"),
        ({"regressor": {"widths": ["a"]}}, "regressor.widths must be a list of int"),
        ({"steps": 0}, "steps must be > 0"),
        ({"weights": {"landmark": -1}}, "loss weight landmark must be >= 0"),
        ({"regressor": {"blocks": [1]}}, "one count per stage"),
        ({"checkpoint": 3}, "checkpoint must be a string or null"),
        ({"data": 3}, "data must be a JSON object"),
    ]
    for data, match in cases:
        with pytest.raises(TrainConfigError, match=match):
            train_config_from_dict(data)
    path.write_text("{not json")
    with pytest.raises(TrainConfigError, match="not valid JSON"):
        load_train_config(path)
    with pytest.raises(TrainConfigError, match="does not exist"):
        load_train_config(tmp_path / "missing.json")
