"""Temporal filters: One Euro (jitter, step lag, streaming), zero-phase Butterworth, rotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfreqz
from scipy.spatial.transform import Rotation

from facecast.transfer.filters import (
    OneEuroConfig,
    OneEuroFilter,
    ZeroPhaseConfig,
    continuous_quaternions,
    smooth_rotations,
    smooth_zero_phase,
)

FPS = 30.0


def _times(frames: int) -> np.ndarray:
    return np.arange(frames) / FPS


def test_one_euro_reduces_jitter_on_a_constant_signal():
    rng = np.random.default_rng(0)
    noisy = 0.5 + rng.normal(scale=0.05, size=(600, 4))
    out = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.0)).apply(_times(600), noisy)
    ratio = out[60:].std(axis=0) / noisy[60:].std(axis=0)
    # first-order low-pass, alpha = 1 / (1 + tau / dt): noise std ratio sqrt(alpha / (2 - alpha))
    alpha = 1.0 / (1.0 + (1.0 / (2 * math.pi)) * FPS)
    np.testing.assert_allclose(ratio, math.sqrt(alpha / (2 - alpha)), rtol=0.2)
    assert ratio.max() < 0.4
    assert abs(out[60:].mean() - 0.5) < 0.01


def _frames_to_reach(out: np.ndarray, start: int, level: float) -> int:
    return int(np.argmax(out[start:, 0] >= level))


def test_one_euro_follows_a_step_with_bounded_lag():
    step = np.zeros((90, 1))
    step[30:] = 1.0
    slow = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.0)).apply(_times(90), step)
    fast = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=1.0)).apply(_times(90), step)
    alpha = 1.0 / (1.0 + (1.0 / (2 * math.pi)) * FPS)
    expected = math.ceil(math.log(0.1) / math.log(1 - alpha))     # frames to 90 % for beta = 0
    assert _frames_to_reach(slow, 30, 0.9) == expected - 1          # index 0 is the step frame
    assert _frames_to_reach(fast, 30, 0.9) <= 4                     # speed raises the cutoff
    assert slow.max() <= 1.0 + 1e-12 and fast.max() <= 1.0 + 1e-12  # first-order: no overshoot
    np.testing.assert_array_equal(slow[:30], 0.0)


def test_one_euro_streaming_equals_batch_and_supports_tensors():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, 3))
    times = np.cumsum(rng.uniform(0.02, 0.05, size=50))              # irregular frame times
    config = OneEuroConfig(min_cutoff=0.5, beta=0.3, d_cutoff=2.0)
    stream = OneEuroFilter(config)
    streamed = np.stack([stream(t, v) for t, v in zip(times, values)])
    np.testing.assert_allclose(streamed, OneEuroFilter(config).apply(times, values), atol=1e-12)
    tensor = OneEuroFilter(config).apply(torch.as_tensor(times), torch.as_tensor(values, dtype=torch.float32))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), streamed, atol=1e-6)


def test_one_euro_rejects_bad_input():
    filt = OneEuroFilter()
    filt(0.0, np.zeros(2))
    with pytest.raises(ValueError, match="increase strictly"):
        filt(0.0, np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        filt(1.0, np.zeros(3))
    with pytest.raises(ValueError, match=r"\(T, C\)"):
        filt.apply(np.arange(3), np.zeros(3))
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroConfig(min_cutoff=0.0)


def test_zero_phase_has_no_lag_on_a_sine():
    t = _times(300)
    sine = np.sin(2 * math.pi * 1.0 * t)[:, None]
    out = smooth_zero_phase(sine, FPS, cutoff_hz=4.0, order=2)[:, 0]
    core = slice(30, 270)
    lags = np.arange(-10, 11)
    correlation = [np.dot(out[core], np.roll(sine[:, 0], lag)[core]) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0
    np.testing.assert_allclose(out[core], sine[core, 0], atol=0.03)   # amplitude kept, no delay


def test_zero_phase_attenuates_high_frequencies_as_designed():
    t = _times(600)
    order, cutoff, high = 2, 3.0, 10.0
    signal = np.stack([np.sin(2 * math.pi * high * t), np.cos(2 * math.pi * high * t)], axis=1)
    out = smooth_zero_phase(signal, FPS, cutoff_hz=cutoff, order=order)
    measured = out[60:-60].std() / signal[60:-60].std()
    _, response = sosfreqz(butter(order, cutoff, fs=FPS, output="sos"), worN=[high], fs=FPS)
    predicted = abs(response[0]) ** 2                                    # forwards and backwards
    assert measured == pytest.approx(predicted, rel=0.1)
    assert 1.0 / measured > 50


def test_zero_phase_reduces_white_noise():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(3000, 2))
    out = smooth_zero_phase(noise, FPS, cutoff_hz=3.0, order=2)
    # the squared response passes about the band below the cutoff: std ratio ~ sqrt(3 / 15)
    ratio = out.std() / noise.std()
    assert 0.3 < ratio < 0.5


@pytest.mark.parametrize("frames", [1, 2, 3, 5, 8])
def test_zero_phase_handles_short_sequences(frames):
    constant = np.full((frames, 2), 0.7)
    np.testing.assert_allclose(smooth_zero_phase(constant, FPS, 4.0, 4), constant, atol=1e-12)
    ramp = np.linspace(0.0, 1.0, frames)[:, None]
    out = smooth_zero_phase(ramp, FPS, 4.0, 2)
    assert out.shape == ramp.shape and np.isfinite(out).all()
    np.testing.assert_allclose(out, ramp, atol=1e-3)                  # odd padding keeps a line


def test_zero_phase_rejects_bad_parameters_and_keeps_tensor_type():
    with pytest.raises(ValueError, match="cutoff"):
        smooth_zero_phase(np.zeros((10, 1)), FPS, cutoff_hz=-1.0)
    with pytest.raises(ValueError, match=r"\(T, C\)"):
        smooth_zero_phase(np.zeros(10), FPS)
    with pytest.raises(ValueError, match="order"):
        ZeroPhaseConfig(order=0)
    out = smooth_zero_phase(torch.ones(20, 3, dtype=torch.float64), FPS)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch.ones(20, 3, dtype=torch.float64))


def _angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude()


def _turn_through_pi(frames: int = 120) -> np.ndarray:
    """Rotation about a tilted axis sweeping 150 -> 210 degrees: rotvecs wrap at 180."""
    axis = np.array([0.2, 1.0, 0.1]) / np.linalg.norm([0.2, 1.0, 0.1])
    angles = np.radians(np.linspace(150.0, 210.0, frames))
    return Rotation.from_rotvec(angles[:, None] * axis).as_rotvec()   # principal, |angle| <= pi


def test_quaternions_are_made_sign_continuous():
    truth = _turn_through_pi()
    assert np.abs(np.diff(truth, axis=0)).max() > 5.0                # the rotvecs jump
    quats = continuous_quaternions(truth)
    assert (np.einsum("ij,ij->i", quats[1:], quats[:-1]) > 0.99).all()


@pytest.mark.parametrize("config", [ZeroPhaseConfig(cutoff_hz=3.0), OneEuroConfig(min_cutoff=2.0, beta=0.5)])
def test_smooth_rotations_survives_wraps_and_removes_noise(config):
    truth = _turn_through_pi()
    rng = np.random.default_rng(3)
    jitter = Rotation.from_rotvec(rng.normal(scale=math.radians(2.0), size=truth.shape))
    noisy = (Rotation.from_rotvec(truth) * jitter).as_rotvec()
    # equivalent rotation vectors on alternate frames: angle a and a - 2 pi about the same axis
    angle = np.linalg.norm(noisy[1::2], axis=1, keepdims=True)
    noisy[1::2] = noisy[1::2] / angle * (angle - 2 * math.pi)
    naive = smooth_zero_phase(noisy, FPS, 3.0)
    out = smooth_rotations(noisy, FPS, config)
    error_in = np.degrees(_angle_between(noisy, truth))[10:-10]
    error_out = np.degrees(_angle_between(out, truth))[10:-10]
    assert np.degrees(_angle_between(naive, truth)).max() > 90            # filtering rotvecs fails
    assert error_out.max() < 3.0
    assert error_out.mean() < 0.6 * error_in.mean()


def test_smooth_rotations_short_and_torch():
    single = torch.tensor([[0.1, 0.2, 0.3]])
    out = smooth_rotations(single, FPS)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, single)
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        smooth_rotations(np.zeros((4, 4)), FPS)


def test_a_track_sampled_below_twice_the_cutoff_comes_back_unchanged():
    """A time-lapse (1 frame/s) under a 6 Hz cutoff: nothing sampled lies above the cutoff (issue #18: a
    ValueError traceback from a driver whose frame rate was misread)."""
    track = np.random.default_rng(0).normal(size=(20, 3))
    assert np.array_equal(smooth_zero_phase(track, fps=1.0, cutoff_hz=6.0), track)
    with pytest.raises(ValueError, match="fps > 0"):
        smooth_zero_phase(track, fps=0.0)
