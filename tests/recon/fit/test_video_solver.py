"""The accurate tracker's chunk solver: Levenberg-Marquardt over frames tied to each other."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from facecast.recon.fit.landmark_fit import FitConfig, LandmarkTarget, TemporalAnchor, default_camera, fit_landmarks
from facecast.recon.fit.video_solver import _solve_block_tridiagonal, _Temporal, solve_chunk
from facecast.recon.landmarks.correspondence import mediapipe478_mapping
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs, project_points
from facecast.render.shading import ambient_light


@pytest.fixture(scope="module")
def sparse(model):
    return SparseLandmarks.build(model, mediapipe478_mapping())


def _clip(sparse, frames=8, seed=3):
    """A head turning and opening its mouth over ``frames`` frames, as noisy 2D points."""
    gen = torch.Generator().manual_seed(seed)
    identity = torch.randn(1, 100, generator=gen) * 0.8
    t = torch.linspace(0, 1, frames)[:, None]
    expression = torch.zeros(frames, 53)
    expression[:, sparse.model.expression_names.index("jawOpen")] = 0.6 * t[:, 0]  # the mouth opens
    rotation = torch.cat([0.05 * t, 0.3 * t, 0.02 * t], 1)
    translation = torch.tensor([[0.5, -0.5, -55.0]]).expand(frames, 3)
    size = torch.tensor([[480, 640]] * frames)
    focal, principal = default_camera(size)
    with torch.no_grad():
        points = sparse.evaluate(identity.expand(frames, -1), expression, rotation, translation)
        pixels = project_points(points, focal, principal) + 0.5 * torch.randn(frames, 478, 2, generator=gen)
    target = LandmarkTarget(pixels, torch.ones(pixels.shape[:2]), size)
    start = FaceCoeffs(identity.expand(frames, -1).clone(), torch.zeros(frames, 53), torch.zeros(frames, 3),
                       translation.clone() + torch.tensor([1.0, 1.0, 3.0]), focal, principal,
                       ambient_light(frames, 1.0), torch.full((frames, 1, 3), 0.6))
    anchor = TemporalAnchor(torch.zeros(1, 3), translation[:1].clone(), torch.zeros(1, 53))
    return identity, (expression, rotation, translation), target, start, anchor


def _chunk_objective(sparse, coeffs, target, config, weight, anchor):
    from facecast.recon.fit.landmark_fit import FitState, landmark_loss, temporal_loss

    state = FitState(coeffs.rotation, coeffs.translation, coeffs.identity[:1], coeffs.expression)
    data = landmark_loss(sparse, state, target, coeffs.focal, coeffs.principal, config.huber_delta).sum()
    return float(data + config.expression_prior * coeffs.expression.abs().sum()
                 + weight * temporal_loss(state, anchor))


def test_block_tridiagonal_solve_equals_the_dense_solve():
    gen = torch.Generator().manual_seed(0)
    blocks, size = 5, 7
    n = blocks * size
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    band = (torch.arange(n)[:, None] // size - torch.arange(n)[None, :] // size).abs() <= 1
    dense = (a @ a.T) * band + n * torch.eye(n, dtype=torch.float64)  # neighbouring blocks only, SPD
    rhs = torch.randn(n, generator=gen, dtype=torch.float64)
    split = dense.reshape(blocks, size, blocks, size)
    index = torch.arange(blocks)
    ours = _solve_block_tridiagonal(split[index, :, index], split[index[1:], :, index[:-1]], rhs.reshape(blocks, size))
    assert torch.allclose(ours.reshape(-1), torch.linalg.solve(dense, rhs), atol=1e-10)


def test_the_chunk_step_equals_the_dense_newton_step():
    """The two-frame blocks the solver works in give the step of the whole chunk's matrix, odd chunks too."""
    gen = torch.Generator().manual_seed(2)
    for batch in (5, 6):
        anchor = TemporalAnchor(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 53), torch.zeros(1, 3))
        scale = torch.rand(59, generator=gen, dtype=torch.float64) + 0.1
        term = _Temporal(batch, anchor, scale, 0.02, 100.0, torch.float64)
        a = torch.randn(batch, 59, 59, generator=gen, dtype=torch.float64)
        hessian = a @ a.transpose(1, 2)
        gradient = torch.randn(batch, 59, generator=gen, dtype=torch.float64)
        free = torch.rand(batch, 59, generator=gen) > 0.2
        mask = free.reshape(-1).double()
        dense = (term.hessian + torch.block_diag(*hessian)) * mask[:, None] * mask[None, :]
        diag = torch.diagonal(dense)
        dense = dense + torch.diag(torch.where(mask > 0, diag * 0.1 + 1e-9, 1.0 - diag))
        expected = torch.linalg.solve(dense, -gradient.reshape(-1) * mask).reshape(batch, 59)
        assert torch.allclose(term.solve(hessian, gradient, free, 0.1), expected, atol=1e-9)


@pytest.mark.parametrize("earlier", [False, True])
def test_the_temporal_quadratic_is_the_temporal_loss(earlier):
    """Gradient and Hessian the chunk solver uses are those of temporal_loss (autograd), with the
    acceleration term and the anchor's earlier rotation."""
    from facecast.recon.fit.landmark_fit import FitState, temporal_loss

    gen = torch.Generator().manual_seed(1)
    batch = 5
    x = torch.randn(batch, 59, generator=gen, dtype=torch.float64)
    anchor = TemporalAnchor(torch.randn(1, 3, generator=gen, dtype=torch.float64),
                            torch.randn(1, 3, generator=gen, dtype=torch.float64),
                            torch.rand(1, 53, generator=gen, dtype=torch.float64),
                            torch.randn(1, 3, generator=gen, dtype=torch.float64) if earlier else None)
    quick = torch.rand(53, generator=gen, dtype=torch.float64)
    scale = torch.cat([torch.tensor([1.0, 1.0, 1.0, 0.01, 0.01, 0.01], dtype=torch.float64), quick])
    term = _Temporal(batch, anchor, scale, 0.02, 100.0, torch.float64)

    def loss(flat):
        v = flat.reshape(batch, 59)
        return 0.02 * temporal_loss(FitState(v[:, :3], v[:, 3:6], None, v[:, 6:]), anchor, quick, 100.0)

    flat = x.reshape(-1).clone().requires_grad_(True)
    grad = torch.autograd.grad(loss(flat), flat)[0]
    assert torch.allclose(term.gradient(x).reshape(-1), grad, atol=1e-10)
    assert torch.allclose(term.hessian, torch.autograd.functional.hessian(loss, x.reshape(-1)), atol=1e-9)


def test_reaches_a_lower_chunk_objective_than_the_adam_steps(sparse):
    identity, (expression, rotation, translation), target, start, anchor = _clip(sparse)
    config, weight = replace(FitConfig(warm_steps=200, lr=0.05, expression_prior=2e-4), temporal_weight=0.02), 0.02
    adam = fit_landmarks(sparse, target, config, init=start, identity=identity, anchor=anchor)
    lm = solve_chunk(sparse, target, start, identity, config, weight, anchor)
    ours = _chunk_objective(sparse, lm, target, config, weight, anchor)
    theirs = _chunk_objective(sparse, adam, target, config, weight, anchor)
    assert ours <= theirs * 1.001, (ours, theirs)
    assert torch.equal(lm.identity, identity.expand(8, -1))
    assert (lm.rotation - rotation).abs().max() < 0.03  # radians
    jaw = sparse.model.expression_names.index("jawOpen")
    assert (lm.expression[:, jaw] - expression[:, jaw]).abs().max() < 0.12
    assert lm.expression.min() >= 0 and lm.expression.max() <= 1


def test_the_temporal_weight_smooths_the_chunk(sparse):
    identity, _, target, start, anchor = _clip(sparse)
    config = FitConfig(expression_prior=2e-4)

    def roughness(weight):
        coeffs = solve_chunk(sparse, target, start, identity, config, weight, anchor)
        return float((coeffs.expression[1:] - coeffs.expression[:-1]).abs().sum())

    assert roughness(2.0) < 0.5 * roughness(0.0)


def test_rejects_a_mismatched_warm_start(sparse):
    identity, _, target, start, _ = _clip(sparse)
    with pytest.raises(ValueError, match="init has 3 frames but target has 8"):
        solve_chunk(sparse, target, start.select(slice(0, 3)), identity, FitConfig(), 0.02)
    with pytest.raises(ValueError, match="identity must have shape"):
        solve_chunk(sparse, target, start, identity.expand(2, -1), FitConfig(), 0.02)


def test_a_three_frame_blink_survives_when_the_blink_channels_are_fast(sparse):
    """The tracker's defaults: shared weights smooth a short blink away; QuickChannels keep it."""
    from facecast.recon.fit.landmark_fit import QuickChannels
    from facecast.recon.fit.levenberg_marquardt import SolverConfig
    from facecast.recon.fit.tracking import TrackConfig

    frames = 16
    identity, _, target, start, anchor = _clip(sparse, frames=frames)
    names = sparse.model.expression_names
    blink = [names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")]
    truth = torch.zeros(frames, 53)
    truth[7:10, blink[0]] = truth[7:10, blink[1]] = 1.0  # both eyes shut for three frames
    rotation = torch.zeros(frames, 3)
    with torch.no_grad():
        points = sparse.evaluate(identity.expand(frames, -1), truth, rotation, start.translation - torch.tensor(
            [1.0, 1.0, 3.0]))
        pixels = project_points(points, start.focal, start.principal)
    target = LandmarkTarget(pixels, target.weight, target.image_size)
    config = TrackConfig()
    args = (sparse, target, start, identity, config.fit, config.temporal_weight, anchor, SolverConfig(iterations=10))
    shared = solve_chunk(*args)
    quick = solve_chunk(*args, QuickChannels(tuple(blink), config.quick_prior, config.quick_temporal))
    reach = lambda c: float(c.expression[7:10][:, blink].max(0).values.mean())  # noqa: E731
    # the Adam path (refine mode's steps, accurate with the "adam" solver) holds them the same way
    adam = replace(config.fit, temporal_weight=config.temporal_weight, warm_steps=200)
    adam_shared = fit_landmarks(sparse, target, adam, init=start, identity=identity, anchor=anchor)
    adam_quick = fit_landmarks(sparse, target, adam, init=start, identity=identity, anchor=anchor,
                               quick=QuickChannels(tuple(blink), config.quick_prior, config.quick_temporal))
    assert reach(adam_quick) > reach(adam_shared) + 0.2
    assert reach(quick) > 0.6
    assert reach(quick) > reach(shared) + 0.2
    still = [k for k in range(frames) if k < 6 or k > 10]
    assert float(quick.expression[still][:, blink].max()) < 0.15  # open eyes stay open


def test_the_acceleration_term_damps_a_one_frame_jump_and_follows_a_steady_turn(sparse):
    """Landmarks that put the head 4 degrees off for two frames of a still stretch (what a wink does
    to the fit) move the fitted pose less with the acceleration term; a steady turn is not lagged."""
    frames = 16
    identity, _, target, start, anchor = _clip(sparse, frames=frames)
    translation = start.translation - torch.tensor([1.0, 1.0, 3.0])
    config = FitConfig(expression_prior=2e-4)

    def fitted(rotation, acceleration):
        with torch.no_grad():
            points = sparse.evaluate(identity.expand(frames, -1), torch.zeros(frames, 53), rotation, translation)
            pixels = project_points(points, start.focal, start.principal)
        observed = LandmarkTarget(pixels, target.weight, target.image_size)
        return solve_chunk(sparse, observed, start, identity, config, 0.02, anchor,
                           rotation_acceleration=acceleration).rotation

    still = torch.zeros(frames, 3)
    still[8:10, 0] = 0.07  # 4 degrees of pitch for two frames
    jump = {a: float(fitted(still, a)[8:10, 0].abs().max()) for a in (0.0, 100.0)}
    assert jump[0.0] > 0.06 and jump[100.0] < 0.7 * jump[0.0], jump
    turn = torch.zeros(frames, 3)
    turn[:, 1] = 0.35 * (1 - torch.cos(torch.linspace(0, torch.pi, frames))) / 2  # 20 degrees, up to 2.2 a frame
    lag = {a: float((fitted(turn, a) - turn).abs().max()) for a in (0.0, 100.0)}
    assert lag[100.0] < 0.01, lag  # radians (0.44 degrees seen, 0.02 without the term)
