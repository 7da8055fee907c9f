"""A user's taste for live mode: per-channel gain, curve and threshold, and the neutral face and rest pose
a calibration measured, kept in a JSON profile.

Per ARKit channel, on the tracker's weight ``w`` (smoothed, in [0, 1]):

1. calibration: ``x = clip((w - n) / (1 - n), 0, 1)`` with ``n`` the channel's weight on the user's
   neutral face (0 without a calibration);
2. threshold ``t``: ``x = 0`` below it, ``(x - t) / (1 - t)`` above (small twitches stay still);
3. curve ``c`` and gain ``g``: ``x = clip(g * x ** c, 0, 1)`` (``c < 1`` reaches full weight sooner).

The head's rotation is sent relative to the calibrated rest (the mean rotation while calibrating),
its translation relative to the rest position.

The JSON file (what ``--save-profile`` writes and ``--profile`` reads)::

    {"channels": {"jawOpen": {"gain": 1.2, "curve": 0.8, "threshold": 0.05}, ...},
     "neutral": {"jawOpen": 0.04, ...}, "rest_rotation": [x, y, z, w], "rest_translation": [x, y, z]}

Every key is optional; channel names are the 52 ARKit names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
from scipy.spatial.transform import Rotation

from facecast.pipelines.export import write_files
from facecast.recon.model.arkit import ARKIT_52
from facecast.transfer.json_files import read_json_file


class ProfileError(ValueError):
    """A profile file cannot be read or holds a bad value; the message names the file and the value."""


@dataclass(frozen=True)
class ChannelTuning:
    """gain in [0, 100], curve in (0, 100], threshold in [0, 1)."""

    gain: float = 1.0
    curve: float = 1.0
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.gain <= 100 and 0 < self.curve <= 100 and 0 <= self.threshold < 1):
            raise ValueError(f"need 0 <= gain <= 100, 0 < curve <= 100, 0 <= threshold < 1, got {self}")


@dataclass(frozen=True)
class Profile:
    """channels: ``{ARKit name: ChannelTuning}``; neutral ``(52,)`` weights of the neutral face (or None);
    rest_rotation ``(4,)`` xyzw and rest_translation ``(3,)`` m of the calibrated rest pose (or None)."""

    channels: Mapping[str, ChannelTuning] = field(default_factory=dict)
    neutral: np.ndarray | None = None
    rest_rotation: np.ndarray | None = None
    rest_translation: np.ndarray | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.channels) - set(ARKIT_52))
        if unknown:
            raise ValueError(f"unknown channels {unknown}; use ARKit names such as 'jawOpen'")
        object.__setattr__(self, "channels", MappingProxyType(dict(self.channels)))
        for name, shape in (("neutral", (52,)), ("rest_rotation", (4,)), ("rest_translation", (3,))):
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {np.shape(value)}")
            if value is not None and not np.isfinite(np.asarray(value, dtype=np.float64)).all():
                raise ValueError(f"{name} must be finite numbers, got {np.asarray(value).tolist()}")
        if self.neutral is not None and not (0 <= np.min(self.neutral) and np.max(self.neutral) <= 1):
            raise ValueError("neutral weights must lie in [0, 1]")
        if self.rest_rotation is not None and not 1e-6 < float(np.linalg.norm(self.rest_rotation)) < 1e6:
            raise ValueError(f"rest_rotation {np.asarray(self.rest_rotation).tolist()} is not a unit quaternion")
        if self.rest_translation is not None and float(np.abs(self.rest_translation).max()) > 10:
            raise ValueError("rest_translation must be within 10 m of the camera")

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        gain, curve, threshold = np.ones(52), np.ones(52), np.zeros(52)
        for name, tuning in self.channels.items():
            k = ARKIT_52.index(name)
            gain[k], curve[k], threshold[k] = tuning.gain, tuning.curve, tuning.threshold
        return gain, curve, threshold

    def shape(self, arkit: np.ndarray) -> np.ndarray:
        """ARKit weights ``(52,)`` -> the weights sent ``(52,)`` (steps 1-3 of the module doc)."""
        arkit = np.asarray(arkit, dtype=np.float64)
        if arkit.shape != (52,):
            raise ValueError(f"arkit must have shape (52,), got {arkit.shape}")
        x = np.clip(arkit, 0.0, 1.0)
        if self.neutral is not None:
            n = np.clip(self.neutral, 0.0, 0.95)
            x = np.clip((x - n) / (1.0 - n), 0.0, 1.0)
        gain, curve, threshold = self._arrays()
        x = np.where(x < threshold, 0.0, (x - threshold) / (1.0 - threshold))
        return np.clip(gain * x ** curve, 0.0, 1.0)

    def pose(self, rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head rotation ``(4,)`` xyzw and translation ``(3,)`` m relative to the calibrated rest."""
        if self.rest_rotation is not None:
            rotation = (Rotation.from_quat(self.rest_rotation).inv() * Rotation.from_quat(rotation)).as_quat()
        if self.rest_translation is not None:
            translation = np.asarray(translation) - self.rest_translation
        return np.asarray(rotation, dtype=np.float64), np.asarray(translation, dtype=np.float64)


def calibrated(profile: Profile, arkit: np.ndarray, rotations: np.ndarray, translations: np.ndarray) -> Profile:
    """``profile`` with the neutral face and rest pose of a calibration: ARKit weights ``(T, 52)``, rotations
    ``(T, 4)`` xyzw, translations ``(T, 3)`` m of the frames the user held still (T >= 1)."""
    arkit, rotations, translations = (np.asarray(a, dtype=np.float64) for a in (arkit, rotations, translations))
    if arkit.ndim != 2 or arkit.shape[1] != 52 or len(arkit) == 0 or rotations.shape != (len(arkit), 4) \
            or translations.shape != (len(arkit), 3):
        raise ValueError(f"need (T, 52), (T, 4), (T, 3) with T >= 1; got {arkit.shape}, {rotations.shape}, "
                         f"{translations.shape}")
    rest = Rotation.from_quat(rotations).mean().as_quat()
    return Profile(profile.channels, np.median(arkit, axis=0), rest, translations.mean(axis=0))


def load_profile(path: str | Path) -> Profile:
    """Read a profile JSON file (see the module doc); :class:`ProfileError` naming what is wrong."""
    path = Path(path)
    document = read_json_file(path, "profile", ProfileError)
    if not isinstance(document, dict):
        raise ProfileError(f"profile {path} must hold a JSON object")
    try:
        given = document.get("channels") or {}
        if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
            raise ValueError('"channels" must be an object {"jawOpen": {"gain": 1.2, "curve": 0.8, "threshold": 0.05}}')
        channels = {name: ChannelTuning(**{k: float(v) for k, v in values.items()}) for name, values in given.items()}
        neutral = document.get("neutral")
        if neutral is not None and not isinstance(neutral, dict):
            raise ValueError('"neutral" must be an object {"jawOpen": 0.04, ...}')
        if neutral is not None:
            unknown = sorted(set(neutral) - set(ARKIT_52))
            if unknown:
                raise ValueError(f"neutral names unknown channels {unknown}")
            neutral = np.array([float(neutral.get(name, 0.0)) for name in ARKIT_52])
        arrays = {key: None if document.get(key) is None else np.array(document[key], dtype=np.float64)
                  for key in ("rest_rotation", "rest_translation")}
        return Profile(channels, neutral, arrays["rest_rotation"], arrays["rest_translation"])
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ProfileError(f"profile {path}: {exc}") from None


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write ``profile`` as JSON (atomically: a crash leaves the old file or the new one)."""
    path = Path(path)
    document: dict = {"channels": {name: vars(t) for name, t in profile.channels.items()}}
    if profile.neutral is not None:
        document["neutral"] = {name: round(float(v), 6) for name, v in zip(ARKIT_52, profile.neutral)}
    for key in ("rest_rotation", "rest_translation"):
        value = getattr(profile, key)
        if value is not None:
            document[key] = [round(float(v), 8) for v in value]
    (written,) = write_files(path.parent, {path.name: json.dumps(document, indent=1).encode()})
    return written
