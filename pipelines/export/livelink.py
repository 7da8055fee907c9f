"""Unreal Live Link Face CSV: the take file the Live Link Face iOS app records.

Format, as the app writes it::

    Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,...,TongueOut,HeadYaw,HeadPitch,
        HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll
    14:03:52:28.207,61,0.0123,0.0,...

- ``Timecode`` is ``HH:MM:SS:FF.fff``: hours, minutes, seconds, the frame ``FF`` within
  the second at the timecode rate (the app records at 60 fps, 30 optional) and the
  subframe ``.fff`` (fraction of a frame, three digits). Seconds of a timecode:
  ``h*3600 + m*60 + s + (FF + 0.fff) / rate``.
- ``BlendShapeCount`` is 61 on every row: 52 ARKit weights + 9 head/eye angles.
- The 52 weight columns carry ARKit names in PascalCase (``EyeBlinkLeft``) in Apple's /
  Unreal's order (``ARKIT_52``), except that recorded takes list ``JawRight`` before
  ``JawLeft`` and ``MouthRight`` before ``MouthLeft``; :data:`LIVELINK_SHAPES` keeps the
  app's order. Weights are in [0, 1].
- The 9 angles are normalised: Unreal's ``ToBlendShapeMap`` (AppleARKitConversion.h)
  divides the tracked rotator's degrees by 180, so a value is ``degrees / 180`` =
  ``radians / pi`` in [-1, 1]. Yaw and roll are negated when the app does not mirror.
- facecast fills the six eye angles from the iris landmarks (:func:`facecast.recon.fit.gaze.eye_gaze`,
  relative to the head, in the head angles' axes and signs) and writes ``TongueOut`` as 0 (ICT Light
  has no tongue shape the tracker fits).

Sources: the header of recorded takes as reproduced by several importers (JimWest's
PyLiveLinkFace ``FaceBlendShape`` enum, nmfisher/blender_livelinkface, a test quoting
"a real LiveLinkFace capture's own header row"); the angle normalisation from Epic's
``AppleARKitConversion.h`` (``ToBlendShapeMap``: "Map the -180..180 range to -1..1");
the subframe reading of ``.fff`` from recorded timecodes such as ``07:44:57:02.944``
(``.944`` cannot be milliseconds of frame 2 at 60 fps).

facecast's API takes and returns angles in radians and converts at the file boundary.
The writer emits the header with ``BlendShapeCount``; the reader matches names
case-insensitively (some takes spell it ``BlendshapeCount``) and in any column order.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass

import numpy as np

from facecast.recon.model.arkit import ARKIT_52

BLENDSHAPE_COUNT = 61
TIMECODE_COLUMN = "Timecode"
COUNT_COLUMN = "BlendShapeCount"
HEAD_COLUMNS: tuple[str, ...] = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS: tuple[str, ...] = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                                "RightEyeYaw", "RightEyePitch", "RightEyeRoll")


def pascal_from_arkit(name: str) -> str:
    """``eyeBlinkLeft`` -> ``EyeBlinkLeft``."""
    return name[:1].upper() + name[1:]


def _app_shape_order() -> tuple[str, ...]:
    """ARKit 52 in PascalCase, with the app's Right-before-Left swaps for jaw and mouth."""
    names = [pascal_from_arkit(n) for n in ARKIT_52]
    for left, right in (("JawLeft", "JawRight"), ("MouthLeft", "MouthRight")):
        i, j = names.index(left), names.index(right)
        names[i], names[j] = names[j], names[i]
    return tuple(names)


#: The 52 weight columns in the order the Live Link Face app writes them.
LIVELINK_SHAPES: tuple[str, ...] = _app_shape_order()
#: The full header of a take: 2 + 52 + 9 = 63 columns.
LIVELINK_HEADER: tuple[str, ...] = (TIMECODE_COLUMN, COUNT_COLUMN) + LIVELINK_SHAPES + HEAD_COLUMNS + EYE_COLUMNS

_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2})[:;](\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class LiveLinkTake:
    """A decoded take of T frames.

    timecodes ``(T,)`` the strings as written; seconds ``(T,)`` float64 seconds since
    00:00:00:00 (from the timecode and the timecode rate); arkit ``(T, 52)`` weights in
    :data:`facecast.recon.model.arkit.ARKIT_52` order; head_rotation ``(T, 3)`` yaw, pitch,
    roll in radians; eyes ``(T, 6)`` left yaw/pitch/roll, right yaw/pitch/roll in radians
    (zeros when the file has no angle columns, see ``has_angles``).
    """

    timecodes: tuple[str, ...]
    seconds: np.ndarray
    arkit: np.ndarray
    head_rotation: np.ndarray
    eyes: np.ndarray
    has_angles: bool = True

    @property
    def num_frames(self) -> int:
        return int(self.arkit.shape[0])


def format_timecode(frame_position: float, rate: int) -> str:
    """``HH:MM:SS:FF.fff`` for a position counted in frames of ``rate`` fps since midnight."""
    if rate <= 0 or not math.isfinite(frame_position) or frame_position < 0:
        raise ValueError(f"timecode needs a rate > 0 and a position >= 0, got {rate}, {frame_position}")
    milli_frames = int(round(frame_position * 1000))
    frames, sub = divmod(milli_frames, 1000)
    seconds, ff = divmod(frames, rate)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{sub:03d}"


def parse_timecode(text: str, rate: float) -> float:
    """Frame position (frames of ``rate`` fps since midnight) of ``HH:MM:SS:FF[.fff]``."""
    match = _TIMECODE.match(text.strip())
    if match is None:
        raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF.fff")
    hh, mm, ss, ff = (int(g) for g in match.groups()[:4])
    sub = float("0." + match.group(5)) if match.group(5) else 0.0
    if mm >= 60 or ss >= 60 or ff >= rate:
        raise ValueError(f"timecode {text!r} out of range for {rate} fps "
                         f"(minutes, seconds < 60 and frame < rate)")
    return ((hh * 60 + mm) * 60 + ss) * rate + ff + sub


def _check_block(name: str, value: np.ndarray | None, frames: int, width: int) -> np.ndarray:
    if value is None:
        return np.zeros((frames, width))
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (frames, width):
        raise ValueError(f"{name} must have shape ({frames}, {width}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values")
    return array


def export_livelink_csv(arkit: np.ndarray, head_rotation: np.ndarray | None = None,
                        eyes: np.ndarray | None = None, fps: float = 60.0,
                        start_timecode: str = "00:00:00:00.000", decimals: int = 6) -> bytes:
    """Live Link Face CSV bytes for T frames sampled at ``fps``.

    arkit ``(T, 52)`` weights in ``ARKIT_52`` order; head_rotation ``(T, 3)`` yaw, pitch,
    roll in radians; eyes ``(T, 6)`` left yaw/pitch/roll, right yaw/pitch/roll in radians
    (both zero when None). Frame ``i`` gets the timecode ``start_timecode + i / fps`` at a
    timecode rate of ``round(fps)``; angles are written as ``radians / pi``.
    """
    weights = np.asarray(arkit, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(ARKIT_52):
        raise ValueError(f"arkit must have shape (T, 52), got {weights.shape}")
    frames = weights.shape[0]
    weights = _check_block("arkit", weights, frames, len(ARKIT_52))
    head = _check_block("head_rotation", head_rotation, frames, 3)
    eye = _check_block("eyes", eyes, frames, 6)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    rate = max(int(round(fps)), 1)
    start = parse_timecode(start_timecode, rate)
    order = [ARKIT_52.index(name[:1].lower() + name[1:]) for name in LIVELINK_SHAPES]
    table = np.concatenate([weights[:, order], head / math.pi, eye / math.pi], axis=1)
    cells = np.char.mod(f"%.{decimals}f", table)
    lines = [",".join(LIVELINK_HEADER)]
    for i in range(frames):
        timecode = format_timecode(start + i * rate / fps, rate)
        lines.append(f"{timecode},{BLENDSHAPE_COUNT}," + ",".join(cells[i]))
    return ("\n".join(lines) + "\n").encode("ascii")


def _column_index(header: list[str]) -> dict[str, int]:
    """Lower-cased column name -> index; raises on missing key columns and duplicates."""
    index: dict[str, int] = {}
    for k, name in enumerate(header):
        key = name.strip().lower()
        if key in index:
            raise ValueError(f"Live Link CSV header repeats column {name.strip()!r}")
        index[key] = k
    if [h.strip().lower() for h in header[:2]] != ["timecode", "blendshapecount"]:
        raise ValueError(f"Live Link CSV must start with Timecode,BlendShapeCount, got {header[:2]}")
    shapes = {pascal_from_arkit(n).lower() for n in ARKIT_52}
    angles = {n.lower() for n in HEAD_COLUMNS + EYE_COLUMNS}
    missing = [pascal_from_arkit(n) for n in ARKIT_52 if pascal_from_arkit(n).lower() not in index]
    if missing:
        raise ValueError(f"Live Link CSV header lacks {len(missing)} ARKit columns: {missing}")
    known = shapes | angles
    unknown = [h for h in header[2:] if h.strip().lower() not in known]
    if unknown:
        raise ValueError(f"Live Link CSV header has unknown columns: {unknown}")
    present = [n for n in HEAD_COLUMNS + EYE_COLUMNS if n.lower() in index]
    if present and len(present) != len(angles):
        raise ValueError(f"Live Link CSV header has only some angle columns: {present}")
    return index


def _parse_rows(rows: list[list[str]], width: int) -> tuple[list[str], np.ndarray]:
    """Timecodes and the ``(T, width - 2)`` value table; checks row length and count."""
    timecodes, values = [], []
    for line, row in enumerate(rows, start=2):
        if len(row) != width:
            raise ValueError(f"Live Link CSV line {line} has {len(row)} cells, the header {width}")
        try:
            count = int(row[1])
            numbers = [float(cell) for cell in row[2:]]
        except ValueError as error:
            raise ValueError(f"Live Link CSV line {line}: {error}") from None
        if count != width - 2:
            raise ValueError(f"Live Link CSV line {line}: BlendShapeCount {count} but "
                             f"{width - 2} value columns")
        timecodes.append(row[0].strip())
        values.append(numbers)
    table = np.asarray(values, dtype=np.float64).reshape(len(values), width - 2)
    if not np.isfinite(table).all():
        raise ValueError("Live Link CSV contains non-finite values")
    if table.size and np.abs(table).max() > PLAUSIBLE_VALUE:
        row, column = np.unravel_index(int(np.argmax(np.abs(table))), table.shape)
        raise ValueError(f"Live Link CSV line {row + 2}: {table[row, column]:g} in column {column + 3} is not a "
                         f"weight or an angle (values are weights in [0, 1] and angles / pi)")
    return timecodes, table


#: the largest value a Live Link column may hold: weights are in [0, 1], angles in [-1, 1] (radians / pi)
PLAUSIBLE_VALUE = 100.0


def read_livelink_csv(data: bytes, timecode_rate: float = 60.0) -> LiveLinkTake:
    """Decode a Live Link Face CSV take.

    ``timecode_rate`` is the frame rate the timecodes count in (the app's capture rate,
    60 by default); it converts ``FF.fff`` to seconds. Raises ``ValueError`` naming the
    problem for a wrong header (missing, unknown or repeated names), a row of the wrong
    length, a ``BlendShapeCount`` that disagrees with the columns or a bad timecode.
    """
    text = data.decode("utf-8-sig")
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError("Live Link CSV is empty")
    header = rows[0]
    index = _column_index(header)
    timecodes, table = _parse_rows(rows[1:], len(header))

    def columns(names: tuple[str, ...]) -> np.ndarray:
        return table[:, [index[n.lower()] - 2 for n in names]]

    arkit = columns(tuple(pascal_from_arkit(n) for n in ARKIT_52))
    has_angles = HEAD_COLUMNS[0].lower() in index
    frames = len(timecodes)
    head = columns(HEAD_COLUMNS) * math.pi if has_angles else np.zeros((frames, 3))
    eyes = columns(EYE_COLUMNS) * math.pi if has_angles else np.zeros((frames, 6))
    seconds = np.array([parse_timecode(t, timecode_rate) / timecode_rate for t in timecodes])
    return LiveLinkTake(timecodes=tuple(timecodes), seconds=seconds, arkit=arkit,
                        head_rotation=head, eyes=eyes, has_angles=has_angles)

