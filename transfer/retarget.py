"""Retargeting: a driver's expression weights and head pose -> a target rig's animation.

Per frame, in this order (the same functions run offline and live):

1. mirror (optional): Left/Right channels swap; the pose is reflected in the x = 0
   plane (rotation vector ``(x, y, z) -> (x, -y, -z)``: yaw and roll negate; x translation
   negates);
2. smoothing (optional) of the 53 channels, the rotation (sign-continuous quaternions) and
   the translation: causal One Euro, or offline zero-phase Butterworth;
3. neutral calibration: ``w = clip((w - n) / (1 - n), 0)`` (or ``w - n`` without
   ``rescale``) with the neutral ``n`` ``(53,)`` taken from
   - ``"frame"``: frame ``neutral_frame``. Offline every frame uses it; live, frames before
     it are not calibrated (neutral 0) and later ones are.
   - ``"percentile"``: the per-channel ``neutral_percentile`` of the (smoothed) clip, i.e. an
     automatic rest-pose estimate. Offline: over the whole clip. Live: over the frames of the
     last ``live_window_s`` seconds seen so far, current frame included (so early frames are
     close to 0 while the estimate settles).
   - ``"none"``.
4. per-channel gain, then clamp (default [0, 1]), by ARKit name (``browInnerUp`` applies to
   both halves) or by facecast channel name (``browInnerUpLeft``);
5. eye gaze channels (``eyeLook*``) zeroed unless ``eye_gaze``;
6. the rig turns the 53 channels into morph weights per mesh;
7. head pose: ``q = P^-1 q_driver P q_rest`` with ``P`` the world rotation of the head node's parent
   at rest: the driver's turn about the world's (glTF's) axes, written in the parent's frame (a
   head under a parent turned 90 degrees still yaws about the vertical); for rigs facing -z it
   is turned by 180 degrees about y first. The turn is about the node's own origin. With
   ``pose_relative`` the rotation is taken relative to the
   reference frame. Translation: ``t_rest + scale * (t - t_ref) / 100`` (cm -> m). The
   reference frame is ``neutral_frame`` in ``"frame"`` mode, else the first frame (offline
   and live alike).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.spatial.transform import Rotation

from facecast.recon.model.arkit import ARKIT_52, arkit_from_camel
from facecast.transfer.filters import (
    OneEuroConfig,
    OneEuroFilter,
    ZeroPhaseConfig,
    smooth_rotations,
    smooth_zero_phase,
)
from facecast.transfer.head_motion import companion_poses, continuous, eye_turns, head_pose
from facecast.transfer.rigs import N_CHANNELS, Rig, channel_names, check_channels

NEUTRAL_MODES = ("none", "frame", "percentile")
SMOOTHING_MODES = ("none", "one_euro", "zero_phase")


@dataclass(frozen=True)
class RetargetConfig:
    """Options of :func:`retarget` and :class:`LiveRetargeter` (see the module doc).

    gain: ``{name: factor}``; clamp: ``{name: (low, high)}``, names ARKit or facecast
    channels; default_clamp for the others. translation_scale: metres of rig per metre
    of driver.
    """

    neutral: str = "percentile"
    neutral_frame: int = 0
    neutral_percentile: float = 5.0
    live_window_s: float = 30.0
    rescale: bool = True
    gain: Mapping[str, float] = field(default_factory=dict)
    clamp: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    default_clamp: tuple[float, float] = (0.0, 1.0)
    mirror: bool = False
    smoothing: str = "one_euro"
    one_euro: OneEuroConfig = OneEuroConfig(min_cutoff=1.5, beta=0.5)
    zero_phase: ZeroPhaseConfig = ZeroPhaseConfig(cutoff_hz=6.0)
    rotation: bool = True
    translation: bool = False
    translation_scale: float = 1.0
    pose_relative: bool = False
    eye_gaze: bool = True

    def __post_init__(self) -> None:
        if self.neutral not in NEUTRAL_MODES:
            raise ValueError(f"neutral must be one of {NEUTRAL_MODES}, got {self.neutral!r}")
        if self.smoothing not in SMOOTHING_MODES:
            raise ValueError(f"smoothing must be one of {SMOOTHING_MODES}, got {self.smoothing!r}")
        if self.neutral_frame < 0 or not 0 <= self.neutral_percentile <= 100 or not self.live_window_s > 0:
            raise ValueError("need neutral_frame >= 0, 0 <= neutral_percentile <= 100, live_window_s > 0")
        known = set(ARKIT_52) | set(channel_names())
        for kind in ("gain", "clamp"):
            unknown = sorted(set(getattr(self, kind)) - known)
            if unknown:
                raise ValueError(f"{kind} names unknown channels {unknown}; use ARKit names such as 'jawOpen'")
            object.__setattr__(self, kind, MappingProxyType(dict(getattr(self, kind))))
        for name, (low, high) in [*self.clamp.items(), ("default_clamp", self.default_clamp)]:
            if not low <= high:
                raise ValueError(f"clamp {name}: low {low} > high {high}")


@dataclass(frozen=True)
class MorphTrack:
    """Morph weights ``(T, K)`` of glTF mesh ``mesh`` (all K targets of the mesh)."""

    mesh: int
    weights: np.ndarray


@dataclass(frozen=True)
class Animation:
    """A retargeted clip: times ``(T,)`` s, one :class:`MorphTrack` per driven mesh, and the
    head ``node``'s rotation ``(T, 4)`` xyzw unit quaternions and translation ``(T, 3)`` m
    (either None when not transferred; both None when ``node`` is None)."""

    times: np.ndarray
    morphs: tuple[MorphTrack, ...]
    node: int | None = None
    rotation: np.ndarray | None = None
    translation: np.ndarray | None = None
    #: ``(node, rotation (T, 4), translation (T, 3))`` of nodes that move rigidly with the head node
    companions: tuple[tuple[int, np.ndarray, np.ndarray], ...] = ()

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64)
        if times.ndim != 1 or len(times) == 0 or not np.isfinite(times).all() or (np.diff(times) <= 0).any():
            raise ValueError(f"times must be a non-empty strictly increasing (T,) array, got shape {times.shape}")
        frames = len(times)
        for track in self.morphs:
            if track.weights.ndim != 2 or track.weights.shape[0] != frames:
                raise ValueError(f"mesh {track.mesh} weights must have shape ({frames}, K), got {track.weights.shape}")
        for name, width in (("rotation", 4), ("translation", 3)):
            value = getattr(self, name)
            if value is not None and (self.node is None or value.shape != (frames, width)):
                raise ValueError(f"{name} needs a node and shape ({frames}, {width})")


@dataclass(frozen=True)
class DriverFrame:
    """One live driver sample: time s, weights ``(53,)``, rotation ``(3,)`` axis-angle rad,
    translation ``(3,)`` cm (camera frame)."""

    time: float
    weights: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))


@dataclass(frozen=True)
class RigFrame:
    """One live output: time s, one ``(K_m,)`` weight vector per rig mesh, rotation ``(4,)``
    xyzw and translation ``(3,)`` m of the head node (None when not transferred)."""

    time: float
    weights: tuple[np.ndarray, ...]
    rotation: np.ndarray | None
    translation: np.ndarray | None


def mirror_permutation() -> np.ndarray:
    """``(53,)`` index swapping every Left channel with its Right twin."""
    names = channel_names()
    swap = {"Left": "Right", "Right": "Left"}
    out = []
    for name in names:
        suffix = next((s for s in swap if name.endswith(s)), None)
        out.append(names.index(name[: -len(suffix)] + swap[suffix]) if suffix else names.index(name))
    return np.array(out)


def _reflect(weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray, rig: Rig,
             config: RetargetConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror (optional) and turn the pose into a -z facing rig's frame: ``(T, 53), (T, 3), (T, 3)``."""
    rotation, translation = rotation.copy(), translation.copy()
    if config.mirror:
        weights = weights[:, mirror_permutation()]
        rotation[:, 1:] *= -1.0
        translation[:, 0] *= -1.0
    if rig.facing == "-z":       # conjugate by a half turn about y
        rotation[:, [0, 2]] *= -1.0
        translation[:, [0, 2]] *= -1.0
    return weights, rotation, translation


def channel_limits(config: RetargetConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel ``(53,)`` gain, low and high clamp; channel names override ARKit names."""
    names = channel_names()
    gain, low, high = np.ones(N_CHANNELS), np.full(N_CHANNELS, config.default_clamp[0]), \
        np.full(N_CHANNELS, config.default_clamp[1])
    for c, name in enumerate(names):
        for key in (arkit_from_camel(name), name):
            if key in config.gain:
                gain[c] = config.gain[key]
            if key in config.clamp:
                low[c], high[c] = config.clamp[key]
    return gain, low, high


def shape_weights(smoothed: np.ndarray, neutral: np.ndarray, config: RetargetConfig) -> np.ndarray:
    """Calibrate, gain, clamp and gate ``(T, 53)`` channels with ``neutral`` ``(53,)``."""
    weights = smoothed - neutral
    if config.rescale:
        weights = np.maximum(weights, 0.0) / np.maximum(1.0 - neutral, 1e-6)
    gain, low, high = channel_limits(config)
    weights = np.clip(weights * gain, low, high)
    if not config.eye_gaze:
        weights[:, [k for k, n in enumerate(channel_names()) if n.startswith("eyeLook")]] = 0.0
    return weights


def _check_pose(value: np.ndarray | None, frames: int, name: str) -> np.ndarray:
    if value is None:
        return np.zeros((frames, 3))
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (frames, 3) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite with shape ({frames}, 3), got {array.shape}")
    return array


def _smooth_offline(weights, rotation, translation, times, fps, config):
    if config.smoothing == "none":
        return weights, Rotation.from_rotvec(rotation).as_quat(), translation
    if config.smoothing == "one_euro":
        filt = OneEuroFilter(config.one_euro)
        weights, translation = filt.apply(times, weights), filt.apply(times, translation)
        rotation = smooth_rotations(rotation, fps, config.one_euro)
    else:
        zero = config.zero_phase
        weights = smooth_zero_phase(weights, fps, zero.cutoff_hz, zero.order)
        translation = smooth_zero_phase(translation, fps, zero.cutoff_hz, zero.order)
        rotation = smooth_rotations(rotation, fps, zero)
    return weights, Rotation.from_rotvec(rotation).as_quat(), translation


def retarget(weights: np.ndarray, rotation: np.ndarray | None, translation: np.ndarray | None,
             fps: float, rig: Rig, config: RetargetConfig = RetargetConfig(), gaze: np.ndarray | None = None
             ) -> Animation:
    """Offline retargeting of a whole clip (see the module doc for the steps).

    weights: ``(T, 53)`` driver channels (``MorphableModel.expression_names`` order);
    rotation: ``(T, 3)`` axis-angle rad or None; translation: ``(T, 3)`` cm or None;
    fps: frames per second (frame k is at ``k / fps`` s). Returns an :class:`Animation`.
    """
    weights = check_channels(weights)
    frames = len(weights)
    if frames == 0 or not fps > 0:
        raise ValueError(f"need at least one frame and fps > 0, got {frames} frames at {fps} fps")
    rotation, translation = _check_pose(rotation, frames, "rotation"), _check_pose(translation, frames, "translation")
    if config.neutral == "frame" and config.neutral_frame >= frames:
        raise ValueError(f"neutral_frame {config.neutral_frame} is past the clip's {frames} frames")
    times = np.arange(frames) / fps
    weights, rotation, translation = _reflect(weights, rotation, translation, rig, config)
    weights, quats, translation = _smooth_offline(weights, rotation, translation, times, fps, config)
    ref = config.neutral_frame if config.neutral == "frame" else 0
    neutral = {"none": np.zeros(N_CHANNELS), "frame": weights[ref],
               "percentile": np.percentile(weights, config.neutral_percentile, axis=0)}[config.neutral]
    shaped = shape_weights(weights, neutral, config)
    morphs = tuple(MorphTrack(mesh.mesh, values) for mesh, values in zip(rig.meshes, rig.evaluate(shaped)))
    rotation_out, translation_out = head_pose(quats, translation, (quats[ref], translation[ref]), rig, config)
    if rotation_out is not None:
        rotation_out = continuous(rotation_out)
    node = rig.head_node if rotation_out is not None or translation_out is not None else None
    companions = companion_poses(quats, translation, (quats[ref], translation[ref]), rig, config,
                                 eye_turns(gaze, frames, rig, config))
    return Animation(times, morphs, node, rotation_out, translation_out, companions if node is not None else ())


class LiveRetargeter:
    """Causal, frame-by-frame :func:`retarget`: ``push(DriverFrame) -> RigFrame``.

    Smoothing must be ``"none"`` or ``"one_euro"``; calibration as in the module doc.
    """

    def __init__(self, rig: Rig, config: RetargetConfig = RetargetConfig()) -> None:
        if config.smoothing == "zero_phase":
            raise ValueError("zero-phase smoothing needs the whole clip; use 'one_euro' live")
        self.rig, self.config = rig, config
        self.reset()

    def reset(self) -> None:
        """Forget every past frame (filters, neutral, reference pose)."""
        self._filters = [OneEuroFilter(self.config.one_euro) for _ in range(3)]
        self._count = 0
        self._window: deque[tuple[float, np.ndarray]] = deque()
        self._neutral = np.zeros(N_CHANNELS)
        self._reference: tuple[np.ndarray, np.ndarray] | None = None
        self._raw_quat: np.ndarray | None = None
        self._out_quat: np.ndarray | None = None

    def _smooth(self, time: float, weights: np.ndarray, rotvec: np.ndarray, translation: np.ndarray):
        quat = continuous(Rotation.from_rotvec(rotvec[None]).as_quat(), self._raw_quat)[0]
        self._raw_quat = quat
        if self.config.smoothing == "none":
            return weights, quat, translation
        weights_f, quat_f, translation_f = self._filters
        quat = quat_f(time, quat)
        norm = np.linalg.norm(quat)
        if norm < 1e-8:
            raise ValueError("smoothed quaternion vanished; the head turns faster than the filter allows")
        # the same round trip as smooth_rotations (angles in [0, pi]) so both paths agree
        quat = Rotation.from_rotvec(Rotation.from_quat(quat / norm).as_rotvec()).as_quat()
        return weights_f(time, weights), quat, translation_f(time, translation)

    def _update_neutral(self, time: float, weights: np.ndarray, quat: np.ndarray, translation: np.ndarray) -> None:
        config = self.config
        at_reference = self._count == (config.neutral_frame if config.neutral == "frame" else 0)
        if self._reference is None or at_reference:
            self._reference = (quat, translation)
        if config.neutral == "frame" and at_reference:
            self._neutral = weights.copy()
        elif config.neutral == "percentile":
            self._window.append((time, weights))
            while self._window[0][0] < time - config.live_window_s:
                self._window.popleft()
            samples = np.stack([w for _, w in self._window])
            self._neutral = np.percentile(samples, config.neutral_percentile, axis=0)

    def push(self, frame: DriverFrame) -> RigFrame:
        """Retarget one frame; times must increase from frame to frame."""
        weights = check_channels(np.asarray(frame.weights, dtype=np.float64)[None], "frame.weights")
        rotation = _check_pose(np.asarray(frame.rotation, dtype=np.float64)[None], 1, "frame.rotation")
        translation = _check_pose(np.asarray(frame.translation, dtype=np.float64)[None], 1, "frame.translation")
        weights, rotation, translation = _reflect(weights, rotation, translation, self.rig, self.config)
        smoothed, quat, moved = self._smooth(float(frame.time), weights[0], rotation[0], translation[0])
        self._update_neutral(float(frame.time), smoothed, quat, moved)
        self._count += 1
        shaped = shape_weights(smoothed[None], self._neutral, self.config)
        outputs = tuple(values[0] for values in self.rig.evaluate(shaped))
        rotation_out, translation_out = head_pose(quat[None], moved[None], self._reference, self.rig, self.config)
        if rotation_out is not None:
            rotation_out = continuous(rotation_out, self._out_quat)[0]
            self._out_quat = rotation_out
        return RigFrame(float(frame.time), outputs, rotation_out,
                        None if translation_out is None else translation_out[0])


def stack_frames(frames: list[RigFrame], rig: Rig) -> Animation:
    """Live outputs of one rig -> an :class:`Animation` (e.g. to export a recorded session)."""
    if not frames:
        raise ValueError("no frames to stack")
    morphs = tuple(MorphTrack(mesh.mesh, np.stack([f.weights[m] for f in frames]))
                   for m, mesh in enumerate(rig.meshes))
    rotation = None if frames[0].rotation is None else np.stack([f.rotation for f in frames])
    translation = None if frames[0].translation is None else np.stack([f.translation for f in frames])
    node = rig.head_node if rotation is not None or translation is not None else None
    return Animation(np.array([f.time for f in frames]), morphs, node, rotation, translation)

