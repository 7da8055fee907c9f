"""Driver frame timing: uniform clips pass, variable-rate clips are measured and resampled."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.transfer.timing import frame_timing, resample


def test_uniform_times_pass_and_drifting_times_are_measured():
    fps = 30.0
    uniform = frame_timing(5.0 + np.arange(90) / fps + 0.001, fps)  # offset start, 1 ms jitter-free
    assert uniform.is_uniform and uniform.max_drift < 1e-9 and uniform.times[0] == 0.0
    steps = np.where(np.arange(89) % 2 == 0, 0.020, 0.080)  # alternating 20 / 80 ms: 20 fps on average
    drifting = frame_timing(np.concatenate([[0.0], np.cumsum(steps)]), fps)
    assert not drifting.is_uniform and drifting.max_drift > 1.0  # seconds: 90 frames over 4.4 s, not 3 s
    assert "variable frame rate" in drifting.describe("clip.mp4") and "clip.mp4" in drifting.describe("clip.mp4")


def test_resample_is_exact_for_linear_channels_and_covers_the_span():
    rng = np.random.default_rng(0)
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.02, 0.06, 49))])
    timing = frame_timing(times, 25.0)
    values = np.stack([3.0 * times + 1.0, -2.0 * times], axis=1)
    out = resample(timing, values)
    grid = np.arange(len(out)) / 25.0
    assert len(out) == int(np.floor(times[-1] * 25.0)) + 1 and grid[-1] <= times[-1]
    np.testing.assert_allclose(out, np.stack([3.0 * grid + 1.0, -2.0 * grid], axis=1), atol=1e-12)


def test_bad_times_are_clear_errors():
    with pytest.raises(ValueError, match="clip.mp4: frame times must increase strictly \\(frame 2"):
        frame_timing([0.0, 0.1, 0.1, 0.2], 30.0, "clip.mp4")
    with pytest.raises(ValueError, match="frame rate must be a positive"):
        frame_timing([0.0, 0.1], 0.0)
    with pytest.raises(ValueError, match="values must have shape"):
        resample(frame_timing([0.0, 0.1], 10.0), np.zeros((3, 2)))


def test_a_timestamp_break_is_closed_up_not_resampled_into_hours():
    """12 frames with a one-hour jump in their times (issue #18: 108,001 output frames before)."""
    fps = 30.0
    times = np.concatenate([np.arange(6) / fps, 3600.0 + np.arange(6) / fps])
    timing = frame_timing(times, fps)
    assert timing.breaks == ((6, pytest.approx(3600.0 - 5 / fps)),)
    out = resample(timing, np.arange(12, dtype=float)[:, None])
    assert len(out) == 12  # the break takes one frame interval
    assert not timing.is_uniform and "timestamp jumps closed up: 3599.8 s before frame 6" in timing.describe("clip")
    steady = frame_timing(np.arange(60) / fps + np.r_[np.zeros(30), np.full(30, 1.5)], fps)  # a 1.5 s freeze
    assert steady.breaks == () and len(resample(steady, np.zeros((60, 1)))) == 60 + 45  # real footage time kept
