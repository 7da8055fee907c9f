"""Phone videos (issue #18): frames stored on their side with a display rotation are decoded upright, the
way players show them, so tracking sees the head upright (before: head roll off by ~70-90 degrees)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from facecast.pipelines.cli import app
from facecast.pipelines.media import iter_frames, probe_video

FRAMES = 24


@pytest.fixture(scope="module")
def upright(shared_dir) -> list[np.ndarray]:
    """talk1's first frames cut to a 320 x 240 portrait picture (a phone held upright)."""
    import cv2

    frames = [f.rgb for f in iter_frames(shared_dir / "media/videos/talk1.mp4", FRAMES)]
    return [np.ascontiguousarray(cv2.resize(f[:, 87:612], (240, 320))) for f in frames]


def phone_clip(frames: list[np.ndarray], rotation: int, path: Path) -> Path:
    """The frames stored as a phone stores them: turned so that showing them ``rotation`` degrees
    counter-clockwise (FFmpeg's display matrix, as players apply it) gives them back upright."""
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in frames]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width = stored[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.set_display_rotation(rotation)
        for image in stored:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("rotation", [90, 180, 270, -90])
def test_frames_come_out_upright(upright, rotation, tmp_path):
    path = phone_clip(upright, rotation, tmp_path / f"phone_{rotation}.mp4")
    frames = [f.rgb for f in iter_frames(path)]
    assert len(frames) == FRAMES and frames[0].shape == upright[0].shape  # 320 high, 240 wide
    error = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(frames, upright)])
    assert error < 6.0, error  # the codec's loss only
    info = probe_video(path)
    assert (info.width, info.height) == (240, 320)


def test_a_phone_video_is_tracked_upright(upright, tmp_path):
    from facecast.pipelines.export.coefficients import read_coefficients_csv

    rolls = {}
    for name, rotation in (("upright", 0), ("phone", 90)):
        path = phone_clip(upright, rotation, tmp_path / f"{name}.mp4")
        result = CliRunner().invoke(app, ["track", str(path), "-o", str(tmp_path / name), "--mode", "fast"])
        assert result.exit_code == 0, result.output
        take = read_coefficients_csv((tmp_path / name / "coeffs.csv").read_bytes())
        rolls[name] = np.median(np.asarray(take.yaw_pitch_roll_deg)[:, 2])
    assert abs(rolls["phone"] - rolls["upright"]) < 3.0, rolls  # the same head roll (before: ~90 apart)


def test_a_corrupt_packet_is_skipped_and_reported_not_the_end(upright, tmp_path):
    """One packet in the middle overwritten: decoding goes on after it (before: it stopped there, silently),
    and track says which packet it skipped."""
    from facecast.pipelines.media import DecodeReport

    path = phone_clip(upright, 0, tmp_path / "corrupt.mp4")
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    position, size = packets[FRAMES // 2]
    data[position + size // 4:position + size] = b"\xff" * (size - size // 4)
    path.write_bytes(bytes(data))
    report = DecodeReport()
    frames = list(iter_frames(path, report=report))
    assert len(frames) >= FRAMES - 2 and len(report.skipped) == 1  # all but the broken one (and its dependant)
    result = CliRunner().invoke(app, ["track", str(path), "-o", str(tmp_path / "take"), "--mode", "fast"])
    assert result.exit_code == 0, result.output
    assert "1 undecodable packet skipped" in result.stderr
    assert len((tmp_path / "take" / "coeffs.csv").read_text().splitlines()) - 1 == len(frames)


def test_a_stream_that_changes_its_frame_size_is_rescaled_and_said(upright, tmp_path):
    """Issue #18: a video whose frame size changes mid-stream gave a traceback."""
    import cv2

    parts = []
    for k, size in enumerate(((240, 320), (360, 480))):  # (w, h): then the camera switched resolution
        path = tmp_path / f"part{k}.ts"
        with av.open(str(path), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            for image in upright[k * 12:(k + 1) * 12]:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(cv2.resize(image, size)), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        parts.append(path.read_bytes())
    clip = tmp_path / "switch.ts"
    clip.write_bytes(b"".join(parts))
    result = CliRunner().invoke(app, ["track", str(clip), "-o", str(tmp_path / "take"), "--mode", "fast"])
    assert result.exit_code == 0, result.output
    assert "the frame size changed mid-stream: 12 frames rescaled" in result.stderr
    assert "timestamps went back or repeated" in result.stderr  # the second part restarts at 0
    assert len((tmp_path / "take" / "coeffs.csv").read_text().splitlines()) - 1 == 24


def test_a_driver_with_an_hour_long_timestamp_jump_is_closed_up(upright, tmp_path):
    """Issue #18: the jump made the averaged frame rate 0.003 frames/s, and the smoothing filter gave a traceback
    (before that, 108,001 resampled frames)."""
    from fractions import Fraction

    from gltf_tools import arkit_sphere_glb

    from facecast.transfer.glb import read_glb

    path = tmp_path / "gap.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width = upright[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for k, pts in enumerate([*range(6), *range(86400, 86406)]):  # frame 6 an hour after frame 5
            frame = av.VideoFrame.from_ndarray(upright[k], format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert probe_video(path).fps == 24.0  # the declared rate, not the average over the hour
    target = tmp_path / "sphere.glb"
    target.write_bytes(arkit_sphere_glb())
    result = CliRunner().invoke(app, ["transfer", "--driver", str(path), "--target", str(target), "-o",
                                      str(tmp_path / "out.glb"), "--mode", "fast"])
    assert result.exit_code == 0, result.output
    assert "timestamp jumps closed up: 3599.8 s before frame 6" in result.stderr
    document = read_glb((tmp_path / "out.glb").read_bytes()).document
    times = document["accessors"][document["animations"][0]["samplers"][0]["input"]]
    assert times["count"] == 12 and times["max"][0] < 1.0, times


def test_a_video_cut_short_says_so(upright, tmp_path, shared_dir):
    """Issue #18 (no silent wrong result): a download that stopped decodes only its first frames; the track says
    the video ends before the end its header declares. Whole videos (obama's edit list too) say nothing."""
    from facecast.pipelines.media import DecodeReport

    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:  # the index first
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width = upright[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in upright:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.7)])
    report = DecodeReport()
    frames = list(iter_frames(cut, report=report))
    assert 1 <= len(frames) < FRAMES and report.ended_early is not None
    assert report.ended_early[1] == pytest.approx(FRAMES / 24, abs=0.05)
    assert "the video ends early, at" in report.warning(cut)
    for path in (whole, *sorted((shared_dir / "media/videos").glob("*.mp4"))):
        report = DecodeReport()
        assert list(iter_frames(path, report=report)) and report.ended_early is None, path
