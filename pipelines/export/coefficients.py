"""Per-frame face coefficients as CSV or JSON lines, for spreadsheets, plots and scripts.

CSV columns, in this order (one row per frame, a header row first)::

    frame             int, the video frame index
    time              float, seconds
    <C channel names> expression weights, one column per channel (facecast: the 53
                      ARKit-named channels of MorphableModel.expression_names)
    rot_x rot_y rot_z head rotation, axis-angle in radians (camera frame: x right,
                      y up, z towards the viewer)
    yaw_deg pitch_deg roll_deg
                      the same rotation as intrinsic Y-X-Z Euler angles in degrees,
                      ``R = Ry(yaw) Rx(pitch) Rz(roll)``; derived, the readers ignore them
    tx_cm ty_cm tz_cm head translation in cm (a frontal face sits near z = -60)
    lm0_x lm0_y ... lm{K-1}_x lm{K-1}_y
                      optional 2D landmarks in pixels (K = 68 for the FAN scheme)

JSON lines: one object per frame with the keys ``frame``, ``time``, ``expression``
(an object channel name -> weight, in channel order), ``rotation`` (3 floats),
``yaw_pitch_roll_deg`` (3 floats, derived), ``translation_cm`` (3 floats) and,
optionally, ``landmarks`` (K pairs of pixels). CSV numbers carry 9 significant digits
(exact for float32); JSON numbers are exact for float64.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

ROTATION_COLUMNS: tuple[str, ...] = ("rot_x", "rot_y", "rot_z")
EULER_COLUMNS: tuple[str, ...] = ("yaw_deg", "pitch_deg", "roll_deg")
TRANSLATION_COLUMNS: tuple[str, ...] = ("tx_cm", "ty_cm", "tz_cm")
_RESERVED = {"frame", "time", *ROTATION_COLUMNS, *EULER_COLUMNS, *TRANSLATION_COLUMNS}


def yaw_pitch_roll(rotation: np.ndarray) -> np.ndarray:
    """Axis-angle ``(T, 3)`` radians -> yaw, pitch, roll ``(T, 3)`` radians.

    Intrinsic Y-X-Z: ``R = Ry(yaw) Rx(pitch) Rz(roll)`` in the camera frame (x right,
    y up, z towards the viewer): positive yaw turns the face towards +x, positive
    pitch tips it down, positive roll turns it counter-clockwise as the camera sees it.
    """
    array = np.asarray(rotation, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"rotation must have shape (T, 3), got {array.shape}")
    if len(array) == 0:
        return np.zeros((0, 3))
    return Rotation.from_rotvec(array).as_euler("YXZ")


@dataclass(frozen=True)
class CoefficientTrack:
    """T frames of coefficients; shapes are checked on construction.

    frame ``(T,)`` int64, time ``(T,)`` seconds, names ``C`` channel names, expression
    ``(T, C)``, rotation ``(T, 3)`` axis-angle radians, translation ``(T, 3)`` cm,
    landmarks ``(T, K, 2)`` pixels or None, gaze ``(T, 6)`` radians (left yaw / pitch / roll, right
    yaw / pitch / roll of the eyes relative to the head) or None.
    """

    frame: np.ndarray
    time: np.ndarray
    names: tuple[str, ...]
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    landmarks: np.ndarray | None = None
    gaze: np.ndarray | None = None

    def __post_init__(self) -> None:
        frames = len(self.frame)
        if self.gaze is not None and (np.shape(self.gaze) != (frames, 6) or not np.isfinite(self.gaze).all()):
            raise ValueError(f"CoefficientTrack.gaze must have shape ({frames}, 6) and be finite, "
                             f"got {np.shape(self.gaze)}")
        expected = {"frame": (frames,), "time": (frames,), "expression": (frames, len(self.names)),
                    "rotation": (frames, 3), "translation": (frames, 3)}
        for name, shape in expected.items():
            value = np.asarray(getattr(self, name))
            if value.shape != shape:
                raise ValueError(f"CoefficientTrack.{name} must have shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"CoefficientTrack.{name} has non-finite values")
        marks = self.landmarks
        if marks is not None and (np.ndim(marks) != 3 or np.shape(marks)[0] != frames
                                  or np.shape(marks)[2] != 2):
            raise ValueError(f"CoefficientTrack.landmarks must have shape ({frames}, K, 2), "
                             f"got {np.shape(marks)}")
        if marks is not None and not np.isfinite(marks).all():
            raise ValueError("CoefficientTrack.landmarks has non-finite values")
        clashes = sorted(_RESERVED.intersection(self.names))
        if clashes or len(set(self.names)) != len(self.names):
            raise ValueError(f"channel names must be unique and avoid {sorted(_RESERVED)}: {clashes}")

    @property
    def num_frames(self) -> int:
        return len(self.frame)

    @property
    def yaw_pitch_roll_deg(self) -> np.ndarray:
        """``(T, 3)`` yaw, pitch, roll in degrees (see :func:`yaw_pitch_roll`)."""
        return np.degrees(yaw_pitch_roll(self.rotation))


def track_from_coeffs(coeffs, names: list[str] | tuple[str, ...], fps: float, first_frame: int = 0,
                      landmarks: np.ndarray | None = None) -> CoefficientTrack:
    """A track from batched ``FaceCoeffs`` (B frames of a video at ``fps``).

    names: the C expression channel names (``MorphableModel.expression_names``);
    landmarks ``(B, K, 2)`` pixels or None. Frame ``i`` is ``first_frame + i`` at
    ``(first_frame + i) / fps`` seconds.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")

    def numpy(value) -> np.ndarray:
        return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)

    frames = np.arange(first_frame, first_frame + coeffs.expression.shape[0], dtype=np.int64)
    return CoefficientTrack(frame=frames, time=frames / fps, names=tuple(names),
                            expression=numpy(coeffs.expression), rotation=numpy(coeffs.rotation),
                            translation=numpy(coeffs.translation),
                            landmarks=None if landmarks is None else numpy(landmarks))


def _landmark_columns(count: int) -> list[str]:
    return [f"lm{k}_{axis}" for k in range(count) for axis in ("x", "y")]


def export_coefficients_csv(track: CoefficientTrack) -> bytes:
    """CSV bytes with the columns listed in the module docstring."""
    count = 0 if track.landmarks is None else track.landmarks.shape[1]
    header = ["frame", "time", *track.names, *ROTATION_COLUMNS, *EULER_COLUMNS,
              *TRANSLATION_COLUMNS, *_landmark_columns(count)]
    blocks = [np.asarray(track.time, dtype=np.float64)[:, None], track.expression, track.rotation,
              track.yaw_pitch_roll_deg, track.translation]
    if count:
        blocks.append(np.asarray(track.landmarks).reshape(track.num_frames, 2 * count))
    cells = np.char.mod("%.9g", np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks], axis=1))
    lines = [",".join(header)]
    lines += [f"{int(f)}," + ",".join(row) for f, row in zip(track.frame, cells)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _split_header(header: list[str]) -> tuple[tuple[str, ...], int]:
    """Channel names and landmark count of a coefficient CSV header (validated)."""
    if header[:2] != ["frame", "time"] or "rot_x" not in header:
        raise ValueError(f"coefficient CSV must start with frame,time and have rot_x: {header[:4]}")
    start = header.index("rot_x")
    fixed = [*ROTATION_COLUMNS, *EULER_COLUMNS, *TRANSLATION_COLUMNS]
    if header[start:start + len(fixed)] != fixed:
        raise ValueError(f"coefficient CSV needs the columns {fixed} in this order after the channels")
    rest = header[start + len(fixed):]
    if len(rest) % 2 or rest != _landmark_columns(len(rest) // 2):
        raise ValueError(f"coefficient CSV: trailing columns must be lm0_x, lm0_y, ..., got {rest[:4]}")
    return tuple(header[2:start]), len(rest) // 2


def read_coefficients_csv(data: bytes) -> CoefficientTrack:
    """Decode :func:`export_coefficients_csv` output. Raises ``ValueError`` on a bad header or row."""
    rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"))) if r]
    if not rows:
        raise ValueError("coefficient CSV is empty")
    names, count = _split_header([h.strip() for h in rows[0]])
    width = len(rows[0])
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise ValueError(f"coefficient CSV line {line} has {len(row)} cells, the header {width}")
    try:
        table = np.asarray([[float(c) for c in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"coefficient CSV: {error}") from None
    table = table.reshape(len(rows) - 1, width)
    c = len(names)
    rotation_at = 2 + c
    landmarks = table[:, rotation_at + 9:].reshape(-1, count, 2) if count else None
    return CoefficientTrack(frame=table[:, 0].astype(np.int64), time=table[:, 1], names=names,
                            expression=table[:, 2:rotation_at],
                            rotation=table[:, rotation_at:rotation_at + 3],
                            translation=table[:, rotation_at + 6:rotation_at + 9], landmarks=landmarks)


def export_coefficients_jsonl(track: CoefficientTrack) -> bytes:
    """JSON-lines bytes, one object per frame (keys in the module docstring)."""
    euler = track.yaw_pitch_roll_deg
    lines = []
    for t in range(track.num_frames):
        record = {
            "frame": int(track.frame[t]), "time": float(track.time[t]),
            "expression": dict(zip(track.names, np.asarray(track.expression[t], dtype=float).tolist())),
            "rotation": np.asarray(track.rotation[t], dtype=float).tolist(),
            "yaw_pitch_roll_deg": euler[t].tolist(),
            "translation_cm": np.asarray(track.translation[t], dtype=float).tolist(),
        }
        if track.landmarks is not None:
            record["landmarks"] = np.asarray(track.landmarks[t], dtype=float).tolist()
        if track.gaze is not None:
            record["gaze_deg"] = np.degrees(np.asarray(track.gaze[t], dtype=float)).tolist()
        lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def read_coefficients_jsonl(data: bytes) -> CoefficientTrack:
    """Decode :func:`export_coefficients_jsonl` output; every line must name the same channels."""
    records = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    if not records:
        raise ValueError("coefficient JSON lines are empty")
    required = {"frame", "time", "expression", "rotation", "translation_cm"}
    for line, record in enumerate(records, start=1):
        if not isinstance(record, dict) or not required <= record.keys():
            raise ValueError(f"coefficient JSON line {line} lacks some of {sorted(required)}")
    names = tuple(records[0]["expression"])
    with_marks = "landmarks" in records[0]
    for line, record in enumerate(records, start=1):
        if tuple(record["expression"]) != names:
            raise ValueError(f"coefficient JSON line {line} names other channels than line 1")
        if ("landmarks" in record) != with_marks:
            raise ValueError(f"coefficient JSON line {line}: landmarks present on some lines only")

    def stack(key: str, values=None, dtype=np.float64) -> np.ndarray:
        try:
            array = np.asarray([r[key] for r in records] if values is None else values)
            if array.dtype.kind not in "iuf":
                raise TypeError(array.dtype)
            return array.astype(dtype)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"coefficient JSON lines: '{key}' must hold numbers of one shape on every line") from None

    return CoefficientTrack(
        frame=stack("frame", dtype=np.int64), time=stack("time"),
        names=names, expression=stack("expression", [list(r["expression"].values()) for r in records]),
        rotation=stack("rotation"), translation=stack("translation_cm"),
        landmarks=stack("landmarks") if with_marks else None,
        gaze=np.radians(stack("gaze_deg")) if all("gaze_deg" in r for r in records) else None)
