"""Landmark fitting and video tracking on synthetic faces with known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facecast.recon.fit.landmark_fit import FitConfig, LandmarkTarget, default_camera, fit_landmarks
from facecast.recon.fit.tracking import FrameLandmarks, TrackConfig, VideoTracker
from facecast.recon.landmarks.correspondence import mediapipe478_mapping
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs, project_points
from facecast.recon.model.geometry import axis_angle_to_matrix


@pytest.fixture(scope="module")
def sparse(model):
    return SparseLandmarks.build(model, mediapipe478_mapping())


def _truth(batch: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    identity = torch.randn(batch, 100, generator=gen) * 0.8
    expression = torch.rand(batch, 53, generator=gen) * 0.7 * (torch.rand(batch, 53, generator=gen) < 0.2)
    rotation = (torch.rand(batch, 3, generator=gen) * 2 - 1) * torch.tensor([0.3, 0.6, 0.15])
    translation = torch.tensor([0.0, 0.0, -60.0]) + torch.randn(batch, 3, generator=gen) * torch.tensor([2, 2, 5])
    return identity, expression, rotation, translation


def _observe(sparse, truth, size=(480, 640), noise=0.7, seed=0):
    batch = truth[0].shape[0]
    image_size = torch.tensor([size] * batch)
    focal, principal = default_camera(image_size)
    with torch.no_grad():
        points = project_points(sparse.evaluate(*truth), focal, principal)
    gen = torch.Generator().manual_seed(seed)
    points = points + torch.randn(points.shape, generator=gen) * noise
    return LandmarkTarget(points, torch.ones(points.shape[:2]), image_size)


def _rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    relative = axis_angle_to_matrix(a).transpose(1, 2) @ axis_angle_to_matrix(b)
    cos = ((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def test_fit_recovers_expression_and_pose(sparse):
    truth = _truth(4, seed=3)
    fitted = fit_landmarks(sparse, _observe(sparse, truth), FitConfig())
    mae = (fitted.expression - truth[1]).abs().mean().item()
    rot = _rotation_error_deg(fitted.rotation, truth[2])
    assert mae < 0.08, mae
    assert float(rot.mean()) < 2.0 and float(rot.max()) < 3.0, rot
    assert float(fitted.expression.min()) >= 0 and float(fitted.expression.max()) <= 1
    # the fit explains the landmarks to about the noise level (0.7 px per axis)
    with torch.no_grad():
        pixels = project_points(sparse.evaluate(fitted.identity, fitted.expression, fitted.rotation,
                                                fitted.translation), fitted.focal, fitted.principal)
    target = _observe(sparse, truth)
    assert float((pixels - target.points).norm(dim=-1).mean()) < 1.6


def test_fit_is_better_than_the_initial_pose_only(sparse):
    truth = _truth(2, seed=5)
    target = _observe(sparse, truth)
    rigid = fit_landmarks(sparse, target, FitConfig(steps=0))
    full = fit_landmarks(sparse, target, FitConfig())

    def residual(c: FaceCoeffs) -> float:
        with torch.no_grad():
            points = project_points(sparse.evaluate(c.identity, c.expression, c.rotation, c.translation),
                                    c.focal, c.principal)
        return float((points - target.points).norm(dim=-1).mean())

    assert residual(full) < 0.5 * residual(rigid)


def test_landmark_target_checks_shapes():
    with pytest.raises(ValueError, match=r"points must have shape \(B, N, 2\)"):
        LandmarkTarget(torch.zeros(1, 5, 3), torch.ones(1, 5), torch.tensor([[10, 10]]))
    with pytest.raises(ValueError, match="weight must have shape"):
        LandmarkTarget(torch.zeros(1, 5, 2), torch.ones(1, 4), torch.tensor([[10, 10]]))


def _sequence(sparse, frames: int):
    t = torch.linspace(0, 1, frames)[:, None]
    identity = (torch.randn(1, 100, generator=torch.Generator().manual_seed(9)) * 0.8).expand(frames, -1)
    expression = torch.zeros(frames, 53)
    expression[:, 17] = 0.5 * (1 + torch.sin(2 * math.pi * t[:, 0])) / 2  # jawOpen
    rotation = torch.cat([0.1 * torch.sin(4 * t), 0.3 * torch.sin(3 * t), 0 * t], 1)
    translation = torch.tensor([0.0, 0.0, -60.0]).expand(frames, 3)
    return identity, expression, rotation, translation


def test_tracker_shares_identity_holds_gaps_and_smooths(sparse, model):
    frames = 20
    truth = _sequence(sparse, frames)
    target = _observe(sparse, truth, noise=1.0, seed=1)
    stream = [FrameLandmarks(i, i / 25, (480, 640), target.points[i]) for i in range(frames)]
    stream[0].points = None  # a leading gap
    stream[7].points = None
    config = TrackConfig(identity_frames=4, identity_window=10, chunk=5)
    results = {}
    for weight in (0.0, 0.05):
        tracker = VideoTracker(sparse, TrackConfig(**{**config.__dict__, "temporal_weight": weight}))
        out = list(tracker.run(iter(stream)))
        assert [r.index for r in out] == list(range(frames))
        assert tracker.gaps == [0, 7]
        assert [r.detected for r in out].count(False) == 2
        torch.testing.assert_close(out[7].coeffs.expression, out[6].coeffs.expression)  # held pose
        coeffs = FaceCoeffs.cat([r.coeffs for r in out])
        assert torch.equal(coeffs.identity, coeffs.identity[:1].expand(frames, -1))
        results[weight] = coeffs
    with torch.no_grad():
        face = torch.as_tensor(np.flatnonzero(model.data.region_vertex_mask(["face"])))
        speeds = {}
        for weight, c in results.items():
            v = model(c.identity, c.expression, c.rotation, c.translation).vertices[:, face]
            speeds[weight] = float((v[2:] - v[1:-1]).norm(dim=-1).mean())
    assert speeds[0.05] < speeds[0.0]  # the temporal term reduces frame-to-frame motion
    jaw = results[0.05].expression[:, 17]
    assert float((jaw[1:] - truth[1][1:, 17]).abs().mean()) < 0.1


def test_run_adam_is_torch_adam_with_the_cosine_schedule():
    from facecast.recon.fit.landmark_fit import run_adam

    gen = torch.Generator().manual_seed(0)
    goal = torch.randn(5, 3, generator=gen)
    ours = torch.randn(5, 3, generator=gen).requires_grad_(True)
    theirs = ours.detach().clone().requires_grad_(True)
    run_adam([ours], lambda: ((ours - goal) ** 4).sum(), 40, 0.05)
    optimizer = torch.optim.Adam([theirs], lr=0.05)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 40, eta_min=0.05 * 0.05)
    for _ in range(40):
        optimizer.zero_grad()
        ((theirs - goal) ** 4).sum().backward()
        optimizer.step()
        schedule.step()
    assert torch.allclose(ours, theirs, atol=1e-6)
