"""Temporal filters for per-frame signals ``(T, C)``: expression weights, poses, landmarks.

- :class:`OneEuroFilter` — causal and adaptive (Casiez, Roussel, Vogel, CHI 2012): a
  first-order low-pass whose cutoff rises with the signal's speed, so slow jitter is
  smoothed hard while fast motion keeps little lag. Streams frame by frame (live
  tracking) or runs over a whole track.
- :func:`smooth_zero_phase` — offline Butterworth low-pass run forwards and backwards
  (``scipy.signal.sosfiltfilt``): no phase lag, for finished videos.
- :func:`smooth_rotations` — axis-angle tracks, filtered as sign-continuous unit
  quaternions so that 2*pi wraps and the q / -q ambiguity never average to garbage.

Arrays may be numpy arrays or torch tensors; results have the input's type, dtype and
device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class OneEuroConfig:
    """One Euro parameters: ``min_cutoff`` Hz at rest, ``beta`` cutoff gain per unit/s of
    speed, ``d_cutoff`` Hz for the speed estimate (the paper's defaults: 1, 0, 1)."""

    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f"OneEuroConfig needs min_cutoff > 0, d_cutoff > 0, beta >= 0: {self}")


@dataclass(frozen=True)
class ZeroPhaseConfig:
    """Butterworth ``order`` and ``cutoff_hz`` for :func:`smooth_zero_phase`."""

    cutoff_hz: float = 4.0
    order: int = 2

    def __post_init__(self) -> None:
        if not (self.cutoff_hz > 0 and self.order >= 1):
            raise ValueError(f"ZeroPhaseConfig needs cutoff_hz > 0 and order >= 1: {self}")


def _as_numpy(values) -> tuple[np.ndarray, object]:
    """``(float64 array, restore)`` where ``restore(array)`` gives the input's type back."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch here
        tensor = values
        array = tensor.detach().cpu().double().numpy()
        return array, lambda out: tensor.new_tensor(np.ascontiguousarray(out))
    array = np.asarray(values)
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
    return array.astype(np.float64), lambda out: np.asarray(out, dtype=dtype)


def _check_track(array: np.ndarray, name: str = "values") -> None:
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (T, C), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with ``cutoff`` Hz at step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Causal One Euro filter over C channels, one state per channel.

    Streaming: ``y = filt(t, x)`` with time ``t`` seconds (strictly increasing) and
    ``x`` ``(C,)``. Batch: ``filt.apply(times (T,), values (T, C)) -> (T, C)`` runs a
    fresh filter over a whole track and leaves the streaming state alone.
    """

    def __init__(self, config: OneEuroConfig = OneEuroConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._time: float | None = None
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def _step(self, t: float, x: np.ndarray) -> np.ndarray:
        if self._time is None:
            self._time, self._value, self._speed = t, x.copy(), np.zeros_like(x)
            return x.copy()
        if x.shape != self._value.shape:
            raise ValueError(f"sample has shape {x.shape}, the filter tracks {self._value.shape}")
        dt = t - self._time
        if not dt > 0:
            raise ValueError(f"times must increase strictly: {t} after {self._time}")
        cfg = self.config
        speed = (x - self._value) / dt
        self._speed = self._speed + _alpha(cfg.d_cutoff, dt) * (speed - self._speed)
        cutoff = cfg.min_cutoff + cfg.beta * np.abs(self._speed)
        self._value = self._value + _alpha(cutoff, dt) * (x - self._value)
        self._time = t
        return self._value.copy()

    def __call__(self, t: float, x):
        """Filter one sample ``x`` ``(C,)`` taken at time ``t`` seconds; returns ``(C,)``."""
        array, restore = _as_numpy(x)
        if array.ndim != 1 or not np.isfinite(array).all() or not math.isfinite(t):
            raise ValueError(f"a sample must be a finite (C,) vector at a finite time, got {array.shape}")
        return restore(self._step(float(t), array))

    def apply(self, times, values):
        """Filter a whole track: times ``(T,)`` seconds, values ``(T, C)`` -> ``(T, C)``."""
        array, restore = _as_numpy(values)
        _check_track(array)
        stamps = np.asarray(times.detach().cpu() if hasattr(times, "detach") else times, dtype=np.float64)
        if stamps.shape != (array.shape[0],):
            raise ValueError(f"times must have shape ({array.shape[0]},), got {stamps.shape}")
        fresh = OneEuroFilter(self.config)
        out = np.empty_like(array)
        for k in range(array.shape[0]):
            out[k] = fresh._step(float(stamps[k]), array[k])
        return restore(out)


def _zero_phase(array: np.ndarray, fps: float, cutoff_hz: float, order: int) -> np.ndarray:
    """:func:`smooth_zero_phase` on a checked float64 ``(T, C)`` array."""
    if not (math.isfinite(fps) and fps > 0 and cutoff_hz > 0):
        raise ValueError(f"need fps > 0 and cutoff_hz > 0, got cutoff {cutoff_hz} Hz at {fps} fps")
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if array.shape[0] < 2 or cutoff_hz >= fps / 2:  # at or above Nyquist a low-pass removes nothing sampled
        return array.copy()
    from scipy.signal import butter, sosfiltfilt  # ~2 s to import: only for the videos that need it

    sos = butter(order, cutoff_hz, btype="low", fs=fps, output="sos")
    # At least scipy's default padding (3 * (2 * sections + 1)) and max(order, 2) cutoff
    # periods, so start-up transients die out inside the padding. numpy's odd reflection
    # repeats itself when the padding is longer than the track: short tracks work too.
    pad = max(3 * (2 * len(sos) + 1), math.ceil(max(order, 2) * fps / cutoff_hz))
    padded = np.pad(array, ((pad, pad), (0, 0)), mode="reflect", reflect_type="odd")
    return sosfiltfilt(sos, padded, axis=0, padtype=None)[pad:-pad]


def smooth_zero_phase(values, fps: float, cutoff_hz: float = 4.0, order: int = 2):
    """Zero-phase Butterworth low-pass of ``values`` ``(T, C)`` sampled at ``fps``.

    The filter runs forwards and backwards, so the magnitude response is squared
    (``-6 dB`` at ``cutoff_hz``) and there is no delay. Both ends are padded by odd
    reflection (``2 x[0] - x[k]``), repeated when the track is shorter than the padding,
    so short tracks work; a single frame comes back unchanged, and so does a track sampled too
    slowly for the cutoff (``cutoff_hz >= fps / 2``: a time-lapse). Constant tracks stay
    constant and straight lines stay (nearly) straight.
    """
    array, restore = _as_numpy(values)
    _check_track(array)
    return restore(_zero_phase(array, fps, cutoff_hz, order))


def continuous_quaternions(rotations: np.ndarray) -> np.ndarray:
    """Axis-angle ``(T, 3)`` -> unit quaternions ``(T, 4)`` (x, y, z, w) with no sign flips:
    consecutive quaternions have a non-negative dot product."""
    if len(rotations) == 0:
        return np.zeros((0, 4))
    quats = Rotation.from_rotvec(rotations).as_quat()
    dots = np.einsum("ij,ij->i", quats[1:], quats[:-1])
    signs = np.cumprod(np.concatenate([[1.0], np.where(dots < 0, -1.0, 1.0)]))
    return quats * signs[:, None]


def smooth_rotations(rotations, fps: float, config: ZeroPhaseConfig | OneEuroConfig = ZeroPhaseConfig()):
    """Smooth axis-angle rotations ``(T, 3)`` radians sampled at ``fps`` -> ``(T, 3)``.

    Each rotation becomes a unit quaternion, signs are made continuous along time (so
    equivalent rotation vectors, e.g. angles ``a`` and ``a - 2*pi``, agree), the four
    components are filtered with ``config`` (zero-phase or One Euro at times
    ``k / fps``), renormalised and turned back into rotation vectors with angles in
    [0, pi].
    """
    array, restore = _as_numpy(rotations)
    _check_track(array, "rotations")
    if array.shape[1] != 3:
        raise ValueError(f"rotations must have shape (T, 3), got {array.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if len(array) == 0:
        return restore(array.copy())
    quats = continuous_quaternions(array)
    if isinstance(config, OneEuroConfig):
        smooth = OneEuroFilter(config).apply(np.arange(len(quats)) / fps, quats)
    else:
        smooth = _zero_phase(quats, fps, config.cutoff_hz, config.order)
    norms = np.linalg.norm(smooth, axis=1, keepdims=True)
    if (norms < 1e-8).any():
        raise ValueError("smoothed quaternion vanished; the track flips faster than the filter allows")
    return restore(Rotation.from_quat(smooth / norms).as_rotvec())
