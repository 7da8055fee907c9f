"""Levenberg-Marquardt refinement: the same landmark objective as the Adam fit, solved faster."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from facecast.recon.fit.landmark_fit import (
    FitConfig,
    FitState,
    LandmarkTarget,
    default_camera,
    fit_landmarks,
    landmark_loss,
)
from facecast.recon.fit.levenberg_marquardt import SolverConfig, refine_landmarks
from facecast.recon.landmarks.correspondence import mediapipe478_mapping
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs, project_points
from facecast.render.shading import ambient_light


@pytest.fixture(scope="module")
def sparse(model):
    return SparseLandmarks.build(model, mediapipe478_mapping())


def _problem(sparse, batch=6, seed=5, noise=0.7):
    gen = torch.Generator().manual_seed(seed)
    identity = torch.randn(batch, 100, generator=gen) * 0.8
    expression = torch.rand(batch, 53, generator=gen) * 0.8 * (torch.rand(batch, 53, generator=gen) < 0.15)
    rotation = (torch.rand(batch, 3, generator=gen) * 2 - 1) * torch.tensor([0.3, 0.6, 0.15])
    translation = torch.tensor([0.0, 0.0, -55.0]) + torch.randn(batch, 3, generator=gen) * torch.tensor([2, 2, 5])
    size = torch.tensor([[480, 640]] * batch)
    focal, principal = default_camera(size)
    with torch.no_grad():
        pixels = project_points(sparse.evaluate(identity, expression, rotation, translation), focal, principal)
    pixels = pixels + noise * torch.randn(pixels.shape, generator=gen)
    target = LandmarkTarget(pixels, torch.ones(pixels.shape[:2]), size)
    # a rough warm start: neutral shape, pose off by ~6 degrees and 2 cm
    init = FaceCoeffs(torch.zeros(batch, 100), torch.zeros(batch, 53),
                      rotation + 0.1 * torch.randn(batch, 3, generator=gen),
                      translation + 2 * torch.randn(batch, 3, generator=gen), focal, principal,
                      ambient_light(batch, 1.0), torch.full((batch, 1, 3), 0.6))
    return (identity, expression, rotation, translation), target, init


def _objective(sparse, coeffs: FaceCoeffs, target: LandmarkTarget, config: FitConfig) -> torch.Tensor:
    state = FitState(coeffs.rotation, coeffs.translation, coeffs.identity, coeffs.expression)
    data = landmark_loss(sparse, state, target, coeffs.focal, coeffs.principal, config.huber_delta)
    return (data + config.identity_prior * (coeffs.identity ** 2).sum(1)
            + config.expression_prior * coeffs.expression.abs().sum(1))


def test_reaches_a_lower_objective_than_the_adam_fit(sparse):
    truth, target, init = _problem(sparse)
    config = FitConfig()
    adam = fit_landmarks(sparse, target, config)  # PnP + rigid + 250 Adam steps
    solved = refine_landmarks(sparse, target, init, config, SolverConfig(iterations=15))
    lm, reference = _objective(sparse, solved, target, config), _objective(sparse, adam, target, config)
    assert bool((lm <= reference * 1.0001).all()), (lm, reference)
    assert float(solved.expression.min()) >= 0 and float(solved.expression.max()) <= 1
    mae = float((solved.expression - truth[1]).abs().mean())
    assert mae < 0.05, mae
    # the camera is kept and the output is a plain detached FaceCoeffs batch
    assert torch.equal(solved.focal, init.focal) and not solved.identity.requires_grad


def test_each_iteration_never_raises_the_objective(sparse):
    _, target, init = _problem(sparse, batch=3, seed=8)
    config = replace(FitConfig(), huber_delta=0.005, identity_prior=1e-5)
    values = [_objective(sparse, init, target, config)]
    for iterations in (1, 2, 4, 8):
        values.append(_objective(sparse, refine_landmarks(sparse, target, init, config,
                                                          SolverConfig(iterations=iterations)), target, config))
    for before, after in zip(values, values[1:]):
        assert bool((after <= before + 1e-7).all()), values
    assert bool((values[-1] < 0.5 * values[0]).all()), values


def test_rejects_a_mismatched_warm_start(sparse):
    _, target, init = _problem(sparse, batch=3)
    with pytest.raises(ValueError, match="init has 2 faces but target has 3"):
        refine_landmarks(sparse, target, init.select(slice(0, 2)))


def test_view_offsets_and_a_step_through_the_camera_are_handled(model):
    sparse = SparseLandmarks.build(model, mediapipe478_mapping(calibrated=True, view_offsets=True))
    truth, target, init = _problem(sparse, batch=2, seed=9)
    config = FitConfig()
    solved = refine_landmarks(sparse, target, init, config, SolverConfig(iterations=10))
    assert bool((_objective(sparse, solved, target, config) < _objective(sparse, init, target, config)).all())
    # a head 2 cm from the camera: steps that would cross the image plane are refused, values stay finite
    near = FaceCoeffs(init.identity, init.expression, init.rotation, init.translation * 0 + torch.tensor([0, 0, -2.0]),
                      init.focal, init.principal, init.lighting, init.albedo)
    odd = refine_landmarks(sparse, target, near, config, SolverConfig(iterations=3))
    assert torch.isfinite(odd.translation).all() and bool((odd.translation[:, 2] < 0).all())
