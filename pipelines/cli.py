"""The ``facecast`` command line: every command's options and help, in one file.

What each command does is in :mod:`facecast.pipelines.commands` (``reconstruct``, ``track``,
``transfer``, ``train``, ``label``; ``avatar`` is short and lives here), the batch command in
:mod:`facecast.pipelines.batch.runner`.

Every command follows the user-error convention of :mod:`facecast.pipelines.errors`
(one ``error: ...`` line, exit status 2, no traceback); decorate commands with
:func:`~facecast.pipelines.errors.user_errors`.

Heavy modules (torch, the model, exporters) are imported inside the commands so
that ``facecast --help`` stays fast.
"""

from __future__ import annotations

import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from facecast.pipelines.cli_help import (
    ASSETS_HELP,
    FACE_HELP,
    MODE_HELP,
    NAMES_HELP,
    QUADS_HELP,
    TRACK_MODE_HELP,
    UNITS_HELP,
    mesh_options,
)
from facecast.pipelines.errors import USER_ERROR_EXIT, UserError, is_user_error, report_user_error, user_errors

app = typer.Typer(
    name="facecast", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="Turn face photos and video into animated 3D heads (ICT Face Model Light, "
         "53 ARKit-named blendshapes).",
)


@app.callback()
def _root() -> None:
    """Turn face photos and video into animated 3D heads (ICT Face Model Light, 53 ARKit blendshapes)."""




@app.command()
@user_errors
def reconstruct(
    photo: Annotated[Path | None, typer.Argument(
        help="Photo to reconstruct (JPEG, PNG, ...; EXIF rotation honoured). "
             "Without one, the built-in public-domain astronaut photo (scikit-image) is used.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Avatar file: .glb, .obj or .ply.")]
    = Path("astronaut.glb"),
    obj: Annotated[bool, typer.Option("--obj", help="Also write an OBJ (+ MTL + texture PNG) beside it.")] = False,
    ply: Annotated[bool, typer.Option("--ply", help="Also write a PLY beside it.")] = False,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "accurate",
    face_index: Annotated[int, typer.Option(help=FACE_HELP)] = 0,
    all_faces: Annotated[bool, typer.Option("--all-faces", help="Reconstruct every face found, largest first: "
                                            "NAME_0.glb, NAME_1.glb, ... each with its JSON and preview.")] = False,
    texture: Annotated[bool, typer.Option(help="Bake a face texture from the photo (--no-texture: flat skin "
                                          "colours, ~0.3-1 s a photo less).")] = True,
    texture_size: Annotated[int, typer.Option(help="Side of the face texture in pixels (256-4096, a power of two). "
                                              "Texels are baked at the photo's own resolution and upsampled, "
                                              "so a bigger size mainly costs file size (~1.5 MB at 1024).")] = 1024,
    preview: Annotated[bool, typer.Option(help="Write NAME_preview.png with the mesh over the photo.")] = True,
    units: Annotated[str, typer.Option(help=UNITS_HELP)] = "m",
    quads: Annotated[bool, typer.Option("--quads", help=QUADS_HELP)] = False,
    names: Annotated[str, typer.Option(help=NAMES_HELP)] = "arkit",
    assets: Annotated[Path | None, typer.Option(help=ASSETS_HELP)] = None,
) -> None:
    """Reconstruct a textured 3D head from one photo.

    Writes the avatar (-o; GLB: metres, photo texture on the face, the 52 ARKit
    blendshapes as morph targets, --names), NAME.json (identity, expression and ARKit weights of
    the photo, head pose, camera, and the model's 68 iBUG and 478 MediaPipe landmarks in
    image pixels) and NAME_preview.png. All files appear together or not at all.
    """
    from facecast.pipelines.commands.reconstruct import ReconstructConfig
    from facecast.pipelines.commands.reconstruct import reconstruct as run
    from facecast.pipelines.export import check_output
    from facecast.recon.fit.texture import TextureConfig
    from facecast.recon.photo import MODES, PhotoConfig

    if mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if face_index < 0:
        raise UserError("--face-index must be >= 0")
    if all_faces and face_index:
        raise UserError("--all-faces and --face-index exclude each other")
    check_output(output)
    extra = tuple(s for s, on in ((".obj", obj), (".ply", ply)) if on and s != output.suffix.lower())
    if texture_size not in (256, 512, 1024, 2048, 4096):
        raise UserError(f"--texture-size must be 256, 512, 1024, 2048 or 4096, got {texture_size}")
    config = ReconstructConfig(photo=PhotoConfig(mode=mode, face_index=face_index), bake_texture=texture,
                               texture=TextureConfig(size=texture_size), mesh=mesh_options(units, quads, names))
    written = run(photo, output, extra, config, assets=assets, preview=preview, all_faces=all_faces)
    if all_faces:
        faces = sum(p.suffix.lower() == output.suffix.lower() for p in written)
        typer.echo(f"{faces} face{'s' if faces != 1 else ''} found and reconstructed, largest first", err=True)
    typer.echo("wrote " + ", ".join(str(p) for p in written))


@app.command()
@user_errors
def track(
    video: Annotated[Path, typer.Argument(help="Video to track (anything FFmpeg reads: MP4, MOV, ...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (created if missing).")],
    meshes: Annotated[str, typer.Option(help="pc2: mesh.obj + one mesh.pc2 point cache; "
                                             "obj: meshes/frame_NNNNNN.obj per frame.")] = "pc2",
    pose: Annotated[str, typer.Option(help="full: head motion in the meshes (frame 0 at the origin); "
                                           "rotation: rotation only; none: expression only.")] = "full",
    smooth: Annotated[float, typer.Option(help="Weight of the frame-to-frame smoothness term (0 = off).")] = 0.02,
    face_index: Annotated[int, typer.Option(help=FACE_HELP)] = 0,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
    preview: Annotated[bool, typer.Option(help="Also write preview.mp4, the fitted face's mesh over the video "
                                               "(drawn and encoded on a second thread; ~20 ms of CPU a frame: a "
                                               "5 s clip takes ~10-20 % longer; once started, accurate frames "
                                               "+36 %, fast frames 2.3x the CPU).")] = False,
    mode: Annotated[str, typer.Option(help=TRACK_MODE_HELP)] = "accurate",
    assets: Annotated[Path | None, typer.Option(help=ASSETS_HELP)] = None,
) -> None:
    """Track a face through a video: per-frame meshes, ARKit weights, head pose, landmarks.

    One identity is fitted for the whole clip; each frame's pose and 53 expression
    weights are fitted with a warm start from the previous frame. Writes mesh.obj +
    mesh.pc2 (or an OBJ sequence), coeffs.csv / coeffs.jsonl, track.json (with the seconds of
    each stage) and, with --preview, preview.mp4. Frames are streamed: memory does not grow with
    the video length.
    """
    from dataclasses import replace

    from facecast.pipelines.commands.track import TrackJobConfig
    from facecast.pipelines.commands.track import track as run
    from facecast.recon.fit.tracking import TrackConfig

    if not 0 <= smooth <= 100:  # also refuses inf and nan
        raise UserError(f"--smooth must be a finite number in [0, 100], got {smooth}")
    if max_frames is not None and max_frames < 1:
        raise UserError("--max-frames must be >= 1")
    try:
        config = TrackJobConfig(tracking=replace(TrackConfig(), temporal_weight=smooth, mode=mode), mesh_format=meshes,
                                pose=pose, face_index=face_index, max_frames=max_frames, preview=preview)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    summary = run(video, output, config, assets=assets)
    for warning in summary.warnings:
        typer.echo(f"warning: {warning}", err=True)
    gaps = f"; no face in {len(summary.gaps)} frames (pose held)" if summary.gaps else ""
    typer.echo(f"tracked {summary.frames} frames at {summary.frames / summary.seconds:.1f} frames/s{gaps}; "
               f"wrote {', '.join(str(p) for p in summary.files)}")


@app.command()
@user_errors
def transfer(
    driver: Annotated[Path, typer.Option(help="Driver video whose expressions are transferred, or a `facecast "
                                         "track` output folder (or its coeffs.jsonl): reused, not tracked again.")],
    target: Annotated[Path, typer.Option(help="Target: a GLB/glTF/VRM with ARKit-named morph targets, "
                                               "a coefficients .json (from reconstruct) or a photo.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file name; each format gets its "
                                                                 "extension (out.glb, out.csv, ...).")],
    formats: Annotated[str, typer.Option(help="Comma-separated: glb (animated avatar), csv (Live Link Face), "
                                              "pc2 (+ .obj; ICT targets), json.")] = "glb",
    smoothing: Annotated[str, typer.Option(help="zero_phase (offline, no lag) or one_euro (causal).")] = "zero_phase",
    mirror: Annotated[bool, typer.Option(help="Swap left and right (for a mirrored driver).")] = False,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many driver frames.")] = None,
    mode: Annotated[str, typer.Option(help="How the driver is tracked: " + TRACK_MODE_HELP)] = "accurate",
    csv_fps: Annotated[int, typer.Option(help="Frame rate of the Live Link CSV, 30 or 60 (what Unreal's importer "
                                         "assumes); the driver is resampled onto it.")] = 60,
    head_motion: Annotated[str, typer.Option(help="rotation (the head turns), full (turns and moves) or none.")]
    = "rotation",
    head_node: Annotated[str | None, typer.Option(help="Node of a GLB target that takes the head pose "
                                                  "(default: the face mesh's node or its 'head' joint).")] = None,
    keep_compression: Annotated[bool, typer.Option(help="Write a meshopt / Draco compressed target back compressed "
                                                   "(smaller, but Blender 3.4 cannot open it).")] = False,
    names: Annotated[str, typer.Option(help=NAMES_HELP + " Only for targets facecast builds (JSON, photo).")]
    = "arkit",
    assets: Annotated[Path | None, typer.Option(help=ASSETS_HELP)] = None,
) -> None:
    """Animate a target avatar with the expressions and head rotation of a driver video.

    The target's own file is copied and only an animation is added (its meshes,
    materials and buffers stay byte-identical; compressed geometry is decoded). Target morph targets are matched to
    ARKit names case-insensitively (prefixes such as blendShape1. are stripped); names
    that match nothing are listed in a warning. Frames without a face hold the last pose.
    """
    from dataclasses import replace

    from facecast.pipelines.commands.track import TrackJobConfig
    from facecast.pipelines.commands.transfer import TransferConfig
    from facecast.pipelines.commands.transfer import transfer as run
    from facecast.recon.fit.tracking import TrackConfig
    from facecast.transfer.retarget import RetargetConfig

    if max_frames is not None and max_frames < 1:
        raise UserError("--max-frames must be >= 1")
    try:
        if head_motion not in ("rotation", "full", "none"):
            raise ValueError(f"--head-motion must be rotation, full or none, got {head_motion!r}")
        retarget = RetargetConfig(smoothing=smoothing, mirror=mirror, rotation=head_motion != "none",
                                  translation=head_motion == "full")
        # the retargeting smooths already, so fast mode's own filter is not stacked on it
        tracking = TrackJobConfig(tracking=replace(TrackConfig(), mode=mode), preview=False, max_frames=max_frames,
                                  fast_smoothing=False)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    config = TransferConfig(tracking=tracking, csv_fps=csv_fps, head_node=head_node, keep_compression=keep_compression,
                            names=mesh_options("m", False, names).names, retarget=retarget,
                            formats=tuple(f.strip() for f in formats.split(",") if f.strip()))
    written, track = run(driver, target, output, config, assets=assets)
    if track.timing:
        typer.echo(f"warning: {track.timing}", err=True)
    gaps = f"; no face in {len(track.gaps)} frames (pose held): {track.gaps[:10]}" if track.gaps else ""
    typer.echo(f"transferred {len(track.weights)} frames at {track.fps:.2f} fps{gaps}; "
               f"wrote {', '.join(str(p) for p in written)}")


@app.command()
@user_errors
def train(
    config: Annotated[Path, typer.Option("--config", help="Training config (JSON; keys of "
                                                          "facecast.recon.learn.train_config.TrainConfig).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Regressor weights to write (.safetensors).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint if it exists.")] = False,
    threads: Annotated[int, typer.Option(help="CPU threads for torch (1 is fastest for these small "
                                              "networks on a shared machine).")] = 1,
    assets: Annotated[Path | None, typer.Option(help=ASSETS_HELP)] = None,
) -> None:
    """Train the coefficient regressor (the GAN's generator) on synthetic faces.

    Faces with known truth are drawn from the ICT model, their MediaPipe landmarks
    projected (plus noise) and, for the image branch, their crops rendered. Losses:
    supervised coefficients, landmark reprojection, priors, an adversarial coefficient
    critic (weight 0 = off) and, optionally, photometric and image-critic terms through
    the renderer. Prints one progress line every log_every steps; writes a resumable
    checkpoint (the config's checkpoint, or OUTPUT with suffix .ckpt) and, at the end,
    the weights with the training config and data description in their metadata.
    """
    from facecast.pipelines.commands.train import run_training

    summary = run_training(config, output, resume, assets=assets, log=typer.echo, threads=threads)
    typer.echo(f"trained {summary.step} steps; wrote {summary.weights} (checkpoint {summary.checkpoint})")


@app.command()
@user_errors
def label(
    inputs: Annotated[list[Path], typer.Argument(help="Photos and/or videos of real faces.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Pseudo-labels to write (.npz).")],
    mode: Annotated[str, typer.Option(help="Fit giving the labels: refine (regressor + Levenberg-Marquardt, "
                                           "default) or accurate.")] = "refine",
    every: Annotated[int, typer.Option(help="Videos: label every N-th frame.")] = 5,
    max_frames: Annotated[int | None, typer.Option(help="Videos: read at most this many frames each.")] = None,
    assets: Annotated[Path | None, typer.Option(help=ASSETS_HELP)] = None,
) -> None:
    """Fit the largest face of real photos and video frames and save the fits as pseudo-labels.

    The file feeds self-supervised fine-tuning of the regressor: a training config with
    "pseudo_labels": "labels.npz" (and usually "init_weights" to start from trained weights)
    mixes these real faces into every batch at "pseudo_fraction". Unreadable inputs and
    frames without a face are skipped and reported; the file is written once, at the end.
    """
    from facecast.pipelines.commands.label import label_media

    summary = label_media(inputs, output, mode, every, max_frames, assets, log=typer.echo)
    skipped = f"; skipped {len(summary.skipped)} inputs" if summary.skipped else ""
    typer.echo(f"labelled {summary.faces} faces ({summary.no_face} frames without a face{skipped})")


@app.command()
@user_errors
def pool(
    directory: Annotated[Path, typer.Argument(help="Pool folder to build, or to resume (same options).")],
    photos: Annotated[list[Path] | None, typer.Argument(help="Photos: their faces texture the renders, "
                                                             "the photos themselves are the backgrounds.")] = None,
    faces: Annotated[int, typer.Option(help="Faces to draw (~70 ms each per worker on a CPU core; "
                                            "32768 take ~20 min with 2 workers).")] = 32768,
    seed: Annotated[int, typer.Option(help="Seed of the pool (shard k depends on (seed, k) only).")] = 0,
    workers: Annotated[int, typer.Option(help="Processes rendering shards (one CPU core each).")] = 1,
    assets: Annotated[Path | None, typer.Option(help=ASSETS_HELP)] = None,
) -> None:
    """Render the image branch's synthetic training pool (crops seen through MediaPipe, with their truth).

    Random ICT heads (identity, every ARKit channel, pose, tinted SH light, a texture baked
    from one of the photos) over parts of the photos, blurred, noisy and JPEG-compressed,
    then MediaPipe on the render: the crops and landmarks are the detector's, as at
    inference. Shards are written one file each; run the command again to resume.
    """
    from facecast.pipelines.commands.pool import build_pool
    from facecast.recon.learn.render_pool import PoolConfig

    try:
        config = PoolConfig(faces=faces, seed=seed)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    summary = build_pool(directory, list(photos or []), config, workers, assets, log=typer.echo)
    typer.echo(f"pool {summary.directory}: {summary.kept} faces kept of {summary.drawn} drawn "
               f"({summary.textures} textures; {summary.rendered} shards rendered in {summary.seconds:.0f} s)")


@app.command()
@user_errors
def crops(
    inputs: Annotated[list[Path], typer.Argument(help="Photos and/or videos of real faces.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Real face crops to write (.npz).")],
    every: Annotated[int, typer.Option(help="Videos: take every N-th frame.")] = 5,
    max_frames: Annotated[int | None, typer.Option(help="Videos: read at most this many frames each.")] = None,
) -> None:
    """Crop the largest face of real photos and video frames (unlabelled), as the regressor sees them.

    The file is the domain critic's real side in training ("real_crops" in the config).
    """
    from facecast.pipelines.commands.pool import collect_crops

    collect_crops(inputs, output, every, max_frames, log=typer.echo)


def _register_commands() -> None:
    from facecast.pipelines.avatar_command import avatar_command
    from facecast.pipelines.batch.runner import batch_command
    from facecast.pipelines.live.command import live_command

    app.command("avatar")(user_errors(avatar_command))
    app.command("batch")(user_errors(batch_command))
    app.command("live")(user_errors(live_command))


_register_commands()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as users read them: ``warning: <message>`` (no source line)."""
    return "warning: " + " ".join(str(message).split()) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``facecast = facecast.pipelines.cli:main``)."""
    from facecast.pipelines.allocator import limit_malloc_arenas

    limit_malloc_arenas()
    warnings.formatwarning = _one_line_warning
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))  # `kill` cleans up as Ctrl-C does
    try:
        app(args=argv, prog_name="facecast")
    except Exception as exc:
        if not is_user_error(exc):
            raise
        report_user_error(exc)
        sys.exit(USER_ERROR_EXIT)
