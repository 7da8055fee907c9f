"""Fast-mode smoothing: noise at rest is removed, motion is followed, gaps pass through."""

from __future__ import annotations

import math

import torch

from facecast.pipelines.commands.smoothing import smooth_tracked
from facecast.recon.fit.tracking import TrackedFrame
from facecast.recon.model.coeffs import FaceCoeffs
from facecast.render.shading import ambient_light


def _frame(k: int, rotation: torch.Tensor, expression: torch.Tensor, detected: bool = True) -> TrackedFrame:
    coeffs = FaceCoeffs(torch.zeros(1, 100), expression[None], rotation[None], torch.tensor([[0.0, 0.0, -50.0]]),
                        torch.tensor([600.0]), torch.tensor([[320.0, 240.0]]), ambient_light(1),
                        torch.full((1, 1, 3), 0.6))
    return TrackedFrame(k, k / 30.0, coeffs, detected)


def test_noise_at_rest_shrinks_and_a_turn_is_followed():
    gen = torch.Generator().manual_seed(0)
    frames = []
    for k in range(120):
        yaw = 0.0 if k < 60 else 0.5 * min(1.0, (k - 60) / 10)  # rest, then a quick 0.5 rad turn
        rotation = torch.tensor([0.0, yaw, 0.0]) + 0.01 * torch.randn(3, generator=gen)
        expression = (0.3 + 0.05 * torch.randn(53, generator=gen)).clamp(0, 1)
        frames.append(_frame(k, rotation, expression))
    out = list(smooth_tracked(frames))
    raw = torch.stack([f.coeffs.rotation[0] for f in frames])
    smooth = torch.stack([f.coeffs.rotation[0] for f in out])
    step = lambda r: float((r[1:60] - r[:59]).norm(dim=-1).mean())  # noqa: E731
    assert step(smooth) < 0.35 * step(raw)
    assert abs(float(smooth[-1, 1]) - 0.5) < 0.02  # the turn is reached
    assert not math.isclose(float(smooth[75, 1]), 0.0)  # and followed while it happens
    expression = torch.stack([f.coeffs.expression[0] for f in out])
    assert float(expression.min()) >= 0.0 and float(expression.max()) <= 1.0
    assert float(expression[30:60].std(0).mean()) < 0.5 * float(torch.stack(
        [f.coeffs.expression[0] for f in frames])[30:60].std(0).mean())


def test_held_gaps_pass_through_unchanged():
    rotation, expression = torch.tensor([0.1, 0.2, 0.0]), torch.full((53,), 0.2)
    frames = [_frame(0, rotation, expression), _frame(1, rotation, expression, detected=False)]
    out = list(smooth_tracked(frames))
    assert out[1] is frames[1] and [f.index for f in out] == [0, 1]
