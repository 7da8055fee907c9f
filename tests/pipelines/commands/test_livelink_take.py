"""The Live Link CSV of a transfer: resampled onto 30 or 60 fps with exact timecodes, eye angles filled."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.pipelines.commands.transfer import TransferConfig, livelink_take
from facecast.pipelines.errors import UserError
from facecast.pipelines.export.livelink import read_livelink_csv
from facecast.recon.model.arkit import ARKIT_52


def _driver(frames: int):
    t = np.arange(frames, dtype=np.float64)
    arkit = np.zeros((frames, 52))
    arkit[:, ARKIT_52.index("jawOpen")] = t / (frames - 1)           # a ramp: its value tells the time
    head = np.stack([np.radians(0.2) * t, np.zeros(frames), np.zeros(frames)], 1)
    gaze = np.tile(np.radians([12.0, -5.0, 0.0, 10.0, -5.0, 0.0]), (frames, 1))  # looking to +x and up
    return arkit, head, gaze


@pytest.mark.parametrize("fps", [24.0, 25.0, 50.0, 29.97])
@pytest.mark.parametrize("rate", [60, 30])
def test_every_row_sits_on_the_resampled_clock(fps, rate):
    frames = 90
    arkit, head, gaze = _driver(frames)
    take = read_livelink_csv(livelink_take(arkit, head, gaze, fps, rate), timecode_rate=rate)
    span = (frames - 1) / fps
    assert take.num_frames == int(np.floor(span * rate + 1e-9)) + 1
    clock = np.arange(take.num_frames) / rate
    assert np.abs(take.seconds - clock).max() <= 1e-3                  # every row within 1 ms
    assert all(t.endswith(".000") for t in take.timecodes)               # whole frames of the rate
    # the values are the driver's at those times (linear between its frames)
    np.testing.assert_allclose(take.arkit[:, ARKIT_52.index("jawOpen")], clock / span, atol=2e-6)
    np.testing.assert_allclose(take.head_rotation[:, 0], np.radians(0.2) * clock * fps, atol=1e-5)
    # eye angles: non-zero, with the driver's signs (the columns hold radians / pi)
    np.testing.assert_allclose(take.eyes[0], np.radians([12.0, -5.0, 0.0, 10.0, -5.0, 0.0]), atol=1e-5)


def test_only_30_or_60_fps():
    with pytest.raises(UserError, match="--csv-fps must be 30 or 60, got 24"):
        TransferConfig(csv_fps=24)
