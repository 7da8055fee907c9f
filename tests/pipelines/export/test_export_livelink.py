"""Live Link Face CSV: header layout, timecodes, angle units, round trip, reader validation."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from facecast.pipelines.export.livelink import (
    LIVELINK_HEADER,
    export_livelink_csv,
    format_timecode,
    parse_timecode,
    read_livelink_csv,
)
from facecast.recon.model.arkit import ARKIT_52

# The header row of a take recorded by the app, as quoted by importers (PyLiveLinkFace,
# blender_livelinkface); note JawRight before JawLeft and MouthRight before MouthLeft.
APP_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,"
    "EyeLookUpRight,EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,"
    "MouthFunnel,MouthPucker,MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,"
    "MouthFrownRight,MouthDimpleLeft,MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,"
    "MouthRollUpper,MouthShrugLower,MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,"
    "MouthLowerDownRight,MouthUpperUpLeft,MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,"
    "BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,CheekSquintLeft,CheekSquintRight,NoseSneerLeft,"
    "NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,"
    "RightEyeYaw,RightEyePitch,RightEyeRoll"
)


def _take(frames: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    arkit = rng.uniform(0.0, 1.0, size=(frames, 52))
    head = rng.uniform(-0.6, 0.6, size=(frames, 3))
    eyes = rng.uniform(-0.3, 0.3, size=(frames, 6))
    return arkit, head, eyes


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("ascii"))))


def test_header_is_the_apps_header():
    arkit, _, _ = _take(frames=1)
    data = export_livelink_csv(arkit)
    assert data.decode("ascii").splitlines()[0] == APP_HEADER == ",".join(LIVELINK_HEADER)
    assert len(LIVELINK_HEADER) == 63


def test_values_land_in_the_column_of_their_name():
    arkit, head, eyes = _take()
    rows = _rows(export_livelink_csv(arkit, head, eyes, fps=30.0))
    for k, name in enumerate(ARKIT_52):
        column = name[0].upper() + name[1:]
        written = np.array([float(r[column]) for r in rows])
        np.testing.assert_allclose(written, arkit[:, k], atol=5e-7, err_msg=column)
    assert {r["BlendShapeCount"] for r in rows} == {"61"}


def test_angles_are_written_as_fractions_of_180_degrees():
    arkit = np.zeros((1, 52))
    head = np.array([[math.pi / 2, -math.pi / 4, math.pi]])      # 90, -45, 180 degrees
    eyes = np.array([[math.radians(18), 0, 0, 0, math.radians(-36), 0]])
    row = _rows(export_livelink_csv(arkit, head, eyes))[0]
    assert [float(row[c]) for c in ("HeadYaw", "HeadPitch", "HeadRoll")] == [0.5, -0.25, 1.0]
    assert float(row["LeftEyeYaw"]) == pytest.approx(0.1)
    assert float(row["RightEyePitch"]) == pytest.approx(-0.2)


@pytest.mark.parametrize("fps, start, expected", [
    (30.0, "00:00:59:28.000", ["00:00:59:28.000", "00:00:59:29.000", "00:01:00:00.000", "00:01:00:01.000"]),
    (60.0, "00:59:59:58.000", ["00:59:59:58.000", "00:59:59:59.000", "01:00:00:00.000", "01:00:00:01.000"]),
])
def test_timecodes_count_frames_and_carry(fps, start, expected):
    arkit, head, eyes = _take(frames=4)
    data = export_livelink_csv(arkit, head, eyes, fps=fps, start_timecode=start)
    assert [r["Timecode"] for r in _rows(data)] == expected
    take = read_livelink_csv(data, timecode_rate=fps)
    assert take.timecodes == tuple(expected)
    np.testing.assert_allclose(np.diff(take.seconds), 1.0 / fps, atol=1e-9)


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_round_trip(fps):
    arkit, head, eyes = _take(frames=100, seed=int(fps))
    take = read_livelink_csv(export_livelink_csv(arkit, head, eyes, fps=fps), timecode_rate=fps)
    assert take.num_frames == 100 and take.has_angles
    np.testing.assert_allclose(take.arkit, arkit, atol=5e-7)
    np.testing.assert_allclose(take.head_rotation, head, atol=5e-7 * math.pi)
    np.testing.assert_allclose(take.eyes, eyes, atol=5e-7 * math.pi)
    np.testing.assert_allclose(take.seconds, np.arange(100) / fps, atol=1e-9)


def test_non_integer_fps_uses_subframes():
    arkit = np.zeros((3, 52))
    data = export_livelink_csv(arkit, fps=29.97)
    timecodes = [r["Timecode"] for r in _rows(data)]
    assert timecodes == ["00:00:00:00.000", "00:00:00:01.001", "00:00:00:02.002"]
    take = read_livelink_csv(data, timecode_rate=30)
    np.testing.assert_allclose(take.seconds, np.arange(3) / 29.97, atol=1e-4)


def test_timecode_helpers():
    assert format_timecode(3723 * 60 + 28.207, 60) == "01:02:03:28.207"
    assert parse_timecode("14:03:52:28.207", 60) == pytest.approx((14 * 3600 + 3 * 60 + 52) * 60 + 28.207)
    assert parse_timecode("00:00:01:05", 30) == 35.0
    with pytest.raises(ValueError, match="out of range"):
        parse_timecode("00:00:00:45.000", 30)
    with pytest.raises(ValueError, match="HH:MM:SS:FF"):
        parse_timecode("12.5", 30)


def _app_take_text(rows: list[list[str]], header: str = APP_HEADER) -> bytes:
    return ("\r\n".join([header] + [",".join(r) for r in rows]) + "\r\n").encode("utf-8")


def test_reads_a_take_written_by_the_app_layout():
    values = [f"{0.01 * k:.4f}" for k in range(52)] + ["0.1", "-0.05", "0.02"] + ["0.0"] * 6
    header = APP_HEADER.replace("BlendShapeCount", "BlendshapeCount")   # spelling seen in some takes
    data = b"\xef\xbb\xbf" + _app_take_text([["14:03:52:28.207", "61", *values]], header)
    take = read_livelink_csv(data, timecode_rate=60)
    app_order = APP_HEADER.split(",")[2:54]
    jaw_left = app_order.index("JawLeft")                               # column 18 of the app's 52
    assert take.arkit[0, ARKIT_52.index("jawLeft")] == pytest.approx(0.01 * jaw_left)
    assert take.arkit[0, ARKIT_52.index("mouthRight")] == pytest.approx(0.01 * app_order.index("MouthRight"))
    np.testing.assert_allclose(take.head_rotation[0], np.array([0.1, -0.05, 0.02]) * math.pi)
    assert take.seconds[0] == pytest.approx(14 * 3600 + 3 * 60 + 52 + 28.207 / 60)


def test_reads_a_take_without_angle_columns():
    header = ",".join(APP_HEADER.split(",")[:54])
    data = _app_take_text([["00:00:00:00.000", "52", *(["0.5"] * 52)]], header)
    take = read_livelink_csv(data)
    assert not take.has_angles
    np.testing.assert_array_equal(take.arkit, np.full((1, 52), 0.5))
    np.testing.assert_array_equal(take.head_rotation, np.zeros((1, 3)))


@pytest.mark.parametrize("mutate, message", [
    (lambda h, r: (h.replace(",JawOpen,", ",JawOpenX,"), r), "lacks 1 ARKit columns: \\['JawOpen'\\]"),
    (lambda h, r: (h + ",Extra", r + ",0"), "unknown columns: \\['Extra'\\]"),
    (lambda h, r: (h.replace("JawOpen", "jawForward"), r), "repeats column"),
    (lambda h, r: (h.replace("Timecode", "Time"), r), "must start with Timecode"),
    (lambda h, r: (h, r.replace(",61,", ",60,", 1)), "BlendShapeCount 60"),
    (lambda h, r: (h, r + ",0.5"), "line 2 has 64 cells"),
    (lambda h, r: (h, r.replace("00:00:00:01.000", "00:00:00:01;x")), "HH:MM:SS:FF"),
    (lambda h, r: (h, r.replace("0.500000", "abc", 1)), "line 2"),
    (lambda h, r: (h.replace(",RightEyeRoll", ""), ",".join(r.split(",")[:-1])), "only some angle"),
])
def test_reader_rejects_malformed_takes(mutate, message):
    data = export_livelink_csv(np.full((1, 52), 0.5), start_timecode="00:00:00:01.000").decode("ascii")
    header, row = data.splitlines()
    header, row = mutate(header, row)
    with pytest.raises(ValueError, match=message):
        read_livelink_csv(f"{header}\n{row}\n".encode("ascii"))


def test_reader_rejects_empty_data():
    with pytest.raises(ValueError, match="empty"):
        read_livelink_csv(b"")


@pytest.mark.parametrize("kwargs, message", [
    ({"arkit": np.zeros((3, 53))}, r"\(T, 52\)"),
    ({"arkit": np.zeros((3, 52)), "head_rotation": np.zeros((2, 3))}, r"head_rotation must have shape \(3, 3\)"),
    ({"arkit": np.zeros((3, 52)), "eyes": np.zeros((3, 4))}, r"eyes must have shape \(3, 6\)"),
    ({"arkit": np.full((3, 52), np.nan)}, "non-finite"),
    ({"arkit": np.zeros((3, 52)), "fps": 0.0}, "fps"),
])
def test_export_checks_shapes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_livelink_csv(**kwargs)
