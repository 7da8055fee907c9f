"""Driver video -> target avatar animation: track, retarget, write GLB / CSV / PC2 / JSON.

Targets (:func:`load_target`): a user GLB/glTF/VRM with ARKit-named morph targets
(the original file is copied and an animation added), a coefficients JSON of an ICT
face (``facecast reconstruct``'s ``.json``), or a photo (reconstructed first). Formats:

- ``glb``: the animated avatar (morph weights + head rotation, timed by the video's fps);
- ``csv``: Unreal Live Link Face CSV of the driver's calibrated ARKit weights and head angles;
- ``pc2``: point cache of the ICT avatar's vertices per frame (+ ``.obj`` of frame 0), ICT targets only;
- ``json``: per-frame ARKit weights, head rotation, and the frames without a face.

Everything is written together at the end (temporary files renamed into place).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from facecast.pipelines.commands.track import TrackJobConfig, VideoFit, iter_tracked
from facecast.pipelines.errors import UserError
from facecast.pipelines.export import check_output, write_files
from facecast.pipelines.export.avatar import AvatarMesh, build_avatar
from facecast.pipelines.export.layout import MeshOptions
from facecast.pipelines.export.livelink import export_livelink_csv
from facecast.pipelines.export.obj import export_obj
from facecast.pipelines.export.pc2 import export_pc2
from facecast.pipelines.media import MediaError
from facecast.recon.model.arkit import ARKIT_52, to_arkit
from facecast.recon.model.morphable import MorphableModel
from facecast.transfer.retarget import Animation, RetargetConfig, retarget
from facecast.transfer.rig_loader import load_rig
from facecast.transfer.rigs import IctRig
from facecast.transfer.timing import FrameTiming, frame_timing, resample

FORMATS = ("glb", "csv", "pc2", "json")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class TransferConfig:
    """Options of ``facecast transfer``."""

    tracking: TrackJobConfig = field(default_factory=lambda: TrackJobConfig(preview=False, fast_smoothing=False))
    retarget: RetargetConfig = field(default_factory=lambda: RetargetConfig(smoothing="zero_phase"))
    formats: tuple[str, ...] = ("glb",)
    csv_fps: int = 60  # the Live Link CSV's frame rate (Unreal's importer assumes 30 or 60)
    head_node: str | None = None  # the GLB node taking the head pose (default: the rig's choice)
    keep_compression: bool = False  # write a meshopt / Draco target back compressed (default: decoded)
    names: str = "arkit"  # morph target names of the GLB of a target facecast builds (JSON / photo): arkit or ict

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise UserError(f"unknown formats {unknown}; choose from {', '.join(FORMATS)}")
        if self.csv_fps not in (30, 60):
            raise UserError(f"--csv-fps must be 30 or 60, got {self.csv_fps}")


@dataclass
class Target:
    """What the driver is transferred onto: a rig, plus the ICT avatar mesh or the user's file bytes."""

    rig: object
    mesh: AvatarMesh | None
    original: bytes | None


@dataclass
class DriverTrack:
    """The driver's per-frame channels ``(T, 53)``, rotation ``(T, 3)``, translation ``(T, 3)`` and eye
    gaze ``(T, 6)`` (radians, :class:`~facecast.recon.fit.tracking.TrackedFrame`'s ``gaze``; zeros without irises).

    Frame k is at ``k / fps`` s. gaps: indices of the video's frames without a face.
    timing: ``None``, or what was wrong with the video's frame times when they drifted
    from ``fps`` (variable frame rate) and the channels were resampled onto that grid.
    """

    weights: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    fps: float
    gaps: list[int]
    timing: str | None = None
    gaze: np.ndarray | None = None


def load_target(path: Path, model: MorphableModel, head_node: str | None = None) -> Target:
    """The :class:`Target` of a GLB/glTF/VRM, coefficients JSON or photo (by content / suffix)."""
    if not path.is_file():
        raise UserError(f"target {path} does not exist")
    if path.suffix.lower() in PHOTO_SUFFIXES:
        from facecast.pipelines.commands.reconstruct import PhotoPipeline
        from facecast.pipelines.media import read_image

        rec = PhotoPipeline(model).run(read_image(path), str(path))
        rig = IctRig(rec.result.coeffs.identity[0].double().numpy(), str(path))
        return Target(rig, rec.mesh, None)
    try:
        rig = load_rig(path, head_node)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if isinstance(rig, IctRig):
        return Target(rig, _dressed(build_avatar(model, rig.identity), path), None)
    original = path.read_bytes()
    if original[:4] != b"glTF":  # a .gltf: packed into one GLB (its buffer and image files embedded)
        from facecast.pipelines.export.gltf_pack import pack_gltf
        from facecast.transfer.glb import write_glb
        from facecast.transfer.rigs import read_document

        try:
            original = write_glb(pack_gltf(read_document(original, str(path)), path.parent, str(path)))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    _check_animatable(rig, original, path)
    return Target(rig, None, original)


def _check_animatable(rig, original: bytes, path: Path) -> None:
    """A two-frame animation written into the target now (milliseconds), so that a file that cannot take one
    fails before the driver is tracked, not after."""
    from facecast.pipelines.export.gltf_animation import animate_glb

    try:
        trial = retarget(np.zeros((2, 53)), np.zeros((2, 3)), None, 30.0, rig,
                         RetargetConfig(neutral="none", smoothing="none"))
        animate_glb(original, trial)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise UserError(f"{path}: cannot take an animation ({type(exc).__name__}: {exc})") from None


def _dressed(mesh: AvatarMesh, path: Path) -> AvatarMesh:
    """``mesh`` with the texture and colours of the reconstruction ``path`` came from: the GLB that
    ``facecast reconstruct`` wrote beside its JSON (``head.json`` -> ``head.glb``), when there is one."""
    from facecast.pipelines.export.gltf import read_appearance

    beside = path.with_suffix(".glb")
    if path.suffix.lower() != ".json" or not beside.is_file():
        return mesh
    try:
        textures, colours = read_appearance(beside.read_bytes())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):  # not our GLB: the flat look
        return mesh
    known = tuple(t for t in textures if t.material in mesh.material_names)
    return replace(mesh.with_colours(colours), textures=known)


def load_take(path: Path, model: MorphableModel) -> DriverTrack:
    """The :class:`DriverTrack` of a ``facecast track`` output folder (or its ``coeffs.jsonl``, with the
    ``track.json`` beside it): no tracking. :class:`UserError` naming the file when it is unusable."""
    from facecast.pipelines.export.coefficients import read_coefficients_jsonl

    folder = path if path.is_dir() else path.parent
    lines, summary_file = (path / "coeffs.jsonl" if path.is_dir() else path), folder / "track.json"
    for needed in (lines, summary_file):
        if not needed.is_file():
            raise UserError(f"driver take {path}: {needed.name} is missing (give a `facecast track` output folder)")
    try:
        take = read_coefficients_jsonl(lines.read_bytes())
        summary = json.loads(summary_file.read_text())
        fps, gaps = float(summary["fps"]), [int(g) for g in summary.get("frames_without_face", [])]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(f"driver take {path}: {exc}") from None
    names = list(model.expression_names)
    if sorted(take.names) != sorted(names):
        raise UserError(f"driver take {path}: its channels are not the model's 53 ({len(take.names)} given)")
    weights = take.expression[:, [take.names.index(n) for n in names]]
    gaze = take.gaze if take.gaze is not None else np.zeros((take.num_frames, 6))
    return DriverTrack(weights, take.rotation, take.translation, fps, gaps, None, gaze)


def track_driver(video: Path, model: MorphableModel, config: TrackJobConfig) -> DriverTrack:
    """Track ``video`` (no files written) into a :class:`DriverTrack`; a ``facecast track`` output folder
    or its ``coeffs.jsonl`` is read as it is (:func:`load_take`)."""
    if video.is_dir() or video.suffix.lower() == ".jsonl":
        take = load_take(video, model)
        if config.max_frames is not None:
            n = config.max_frames
            take = replace(take, weights=take.weights[:n], rotation=take.rotation[:n],
                           translation=take.translation[:n], gaze=take.gaze[:n], gaps=[g for g in take.gaps if g < n])
        return take
    from facecast.pipelines.media import DecodeReport, probe_video

    info = probe_video(video)
    fit = VideoFit.build(model, config)
    report = DecodeReport()
    frames = [tracked for tracked, _, _ in iter_tracked(video, fit, replace(config, preview=False), report=report)]
    stack = {name: torch.cat([getattr(f.coeffs, name) for f in frames]).double().numpy()
             for name in ("expression", "rotation", "translation")}
    stack["gaze"] = np.stack([np.zeros(6) if f.gaze is None else f.gaze for f in frames])
    try:
        timing = frame_timing([f.time for f in frames], info.fps, str(video))
    except ValueError as exc:
        raise MediaError(str(exc)) from None
    note = report.warning(video)
    if not timing.is_uniform:
        resampled = f"{timing.describe(str(video))}; resampled onto a uniform {info.fps:g} fps grid"
        note = resampled if note is None else f"{note}; {resampled}"
        stack = {name: resample(timing, values) for name, values in stack.items()}
        stack["expression"] = stack["expression"].clip(0.0, 1.0)
    return DriverTrack(stack["expression"], stack["rotation"], stack["translation"], info.fps, fit.tracker.gaps,
                       note, stack["gaze"])


def _ict_weights(animation: Animation) -> np.ndarray:
    return animation.morphs[0].weights


def output_files(stem: str, driver: DriverTrack, target: Target, model: MorphableModel,
                 config: TransferConfig) -> dict[str, bytes]:
    """``{file name: bytes}`` for the requested formats."""
    from facecast.pipelines.export.gltf import GltfOptions
    from facecast.pipelines.export.gltf_animation import animate_document, animated_avatar_glb

    animation = retarget(driver.weights, driver.rotation, driver.translation, driver.fps, target.rig, config.retarget,
                         driver.gaze)
    ict = retarget(driver.weights, driver.rotation, driver.translation, driver.fps, IctRig(np.zeros(100)),
                   config.retarget)
    arkit = to_arkit(torch.as_tensor(_ict_weights(ict)), model.expression_names).numpy()
    files: dict[str, bytes] = {}
    if "glb" in config.formats:
        files[f"{stem}.glb"] = (animated_avatar_glb(target.mesh, animation, GltfOptions(names=config.names))
                                if target.mesh is not None
                                else animate_document(target.original, animation,
                                                      keep_compression=config.keep_compression))
    if "csv" in config.formats:
        from facecast.pipelines.export.coefficients import yaw_pitch_roll

        gaze = np.zeros((len(arkit), 6)) if driver.gaze is None else driver.gaze
        files[f"{stem}.csv"] = livelink_take(arkit, yaw_pitch_roll(driver.rotation), gaze, driver.fps, config.csv_fps)
    if "pc2" in config.formats:
        if target.mesh is None:
            raise UserError("--formats pc2 needs an ICT target (a photo or a coefficients .json), "
                            "not a user GLB whose vertices facecast does not know")
        files.update(_pc2_files(stem, target.mesh, _ict_weights(animation), driver.fps))
    if "json" in config.formats:
        record = {"fps": driver.fps, "frames": len(driver.weights), "frames_without_face": driver.gaps,
                  "timing": driver.timing,
                  "arkit_names": list(ARKIT_52), "arkit": np.round(arkit, 5).tolist(),
                  "head_rotation": driver.rotation.tolist()}
        files[f"{stem}.json"] = json.dumps(record).encode()
    return files


def livelink_take(arkit: np.ndarray, head: np.ndarray, gaze: np.ndarray, fps: float, rate: int) -> bytes:
    """Live Link CSV of ``arkit (T, 52)`` weights, ``head (T, 3)`` yaw / pitch / roll and ``gaze (T, 6)`` eye
    angles (radians) sampled at ``fps``, resampled (linearly) onto ``rate`` fps so that every row's
    timecode is a whole frame of ``rate``."""
    rows = np.concatenate([arkit, head, gaze], axis=1)
    rows = resample(FrameTiming(np.arange(len(rows)) / fps, float(rate), 0.0), rows)
    return export_livelink_csv(rows[:, :52].clip(0.0, 1.0), rows[:, 52:55], rows[:, 55:], float(rate))


def _pc2_files(stem: str, mesh: AvatarMesh, weights: np.ndarray, fps: float) -> dict[str, bytes]:
    frames = mesh.vertices[None] + np.einsum("tk,knc->tnc", weights.astype(np.float32), mesh.morph_deltas)
    return {f"{stem}.obj": export_obj(replace(mesh, vertices=frames[0], textures=())),
            f"{stem}.pc2": export_pc2(frames * np.float32(MeshOptions().scale), sample_rate=1.0)}  # the OBJ's units


def transfer(driver: str | Path, target: str | Path, output: str | Path,
             config: TransferConfig = TransferConfig(), model: MorphableModel | None = None,
             assets: str | Path | None = None) -> tuple[list[Path], DriverTrack]:
    """Transfer the expressions of ``driver`` (video) onto ``target``; writes beside ``output``."""
    output = check_output(Path(output).with_suffix(".glb"))
    model = model or MorphableModel.load(assets)
    goal = load_target(Path(target), model, config.head_node)
    track = track_driver(Path(driver), model, config.tracking)
    files = output_files(output.stem, track, goal, model, config)
    return write_files(output.parent, files), track
