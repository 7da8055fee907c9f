"""``facecast live``: the command line of live mode (registered by :mod:`facecast.pipelines.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facecast.pipelines.errors import UserError

SOURCE_HELP = "Exactly one source: --camera N, --video FILE (played at its own frame rate) or --stream URL."
SMOOTHING_HELP = ("responsive (least lag, some jitter), balanced (default) or smooth (steadiest, ~2 frames "
                  "more lag), or none.")
MODE_HELP = ("fast: the trained regressor per frame (default; ~10 ms a frame on 2 cores, MediaPipe "
             "included: real time at 30 fps). refine: + a few landmark-fit steps (steadier lips and lids, "
             "~2x the time: fewer frames per second).")


def _address(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{option} must be HOST:PORT or PORT (1-65535), got {value!r}")
    return host or "127.0.0.1", int(port)


def _senders(vmc: str | None, ifacialmocap: str | None, livelink: str | None, view: bool, view_port: int,
             avatar: Path | None, model) -> list:
    from facecast.pipelines.live.senders.ifacialmocap import IFacialMocapSender
    from facecast.pipelines.live.senders.livelink import LiveLinkFaceSender
    from facecast.pipelines.live.senders.vmc import VmcSender

    senders = []
    try:
        if vmc is not None:
            senders.append(VmcSender(*_address(vmc, "--vmc")))
        if ifacialmocap is not None:
            senders.append(IFacialMocapSender(*_address(ifacialmocap, "--ifacialmocap")))
        if livelink is not None:
            senders.append(LiveLinkFaceSender(*_address(livelink, "--livelink")))
        if view:
            from facecast.pipelines.live.senders.websocket import ViewerServer

            senders.append(ViewerServer("127.0.0.1", view_port, avatar=_avatar(avatar, model)))
    except BaseException:
        for sender in senders:
            sender.close()
        raise
    return senders


def _avatar(path: Path | None, model) -> bytes:
    """The viewer's avatar: the user's GLB / VRM, or facecast's mean head (built in ~1 s)."""
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read avatar {path}: {exc.strerror or exc}") from None
        if data[:4] != b"glTF":
            raise UserError(f"avatar {path} is not a GLB / VRM file")
        return data
    import numpy as np

    from facecast.pipelines.export.avatar import build_avatar
    from facecast.pipelines.export.gltf import GltfOptions, export_glb

    return export_glb(build_avatar(model, np.zeros(100)), GltfOptions(min_delta=1e-5))


def live_command(
    camera: Annotated[int | None, typer.Option(help="Camera index (V4L2): 0 is /dev/video0. " + SOURCE_HELP)] = None,
    video: Annotated[Path | None, typer.Option(help="A video file played in real time, as if it were a camera "
                                               "(demos, tests).")] = None,
    stream: Annotated[str | None, typer.Option(help="A network stream URL (rtsp://, http://, ...), reopened "
                                               "when it stops or stalls.")] = None,
    vmc: Annotated[str | None, typer.Option(help="Send the VMC protocol (OSC/UDP) to HOST:PORT: VSeeFace, "
                                            "VNyan, Warudo, VMagicMirror (their default port 39539).")] = None,
    ifacialmocap: Annotated[str | None, typer.Option(help="Send iFacialMocap's UDP format to HOST:PORT "
                                                     "(VSeeFace / VNyan / Warudo listen on 49983).")] = None,
    livelink: Annotated[str | None, typer.Option(help="Send Live Link Face's UDP packets to HOST:PORT "
                                                 "(Unreal's Live Link, 11111).")] = None,
    view: Annotated[bool, typer.Option("--view", help="Serve the web viewer on 127.0.0.1 (--view-port): the avatar "
                                       "moving with the face, the camera picture and live curves.")] = False,
    view_port: Annotated[int, typer.Option(help="Port of the web viewer.")] = 8765,
    avatar: Annotated[Path | None, typer.Option(help="The viewer's avatar: a GLB with ARKit-named morph targets "
                                                "or a VRM (default: facecast's mean head).")] = None,
    mode: Annotated[str, typer.Option(help=MODE_HELP)] = "fast",
    smoothing: Annotated[str, typer.Option(help=SMOOTHING_HELP)] = "balanced",
    mirror: Annotated[bool, typer.Option("--mirror", help="Mirror left and right (the avatar moves like "
                                         "your reflection).")] = False,
    gaze: Annotated[bool, typer.Option(help="Send eye gaze (--no-gaze: the eyes look ahead).")] = True,
    calibrate: Annotated[float, typer.Option(help="Seconds of neutral face at the start that set per-channel "
                                             "offsets and the rest pose (0: none).")] = 0.0,
    profile: Annotated[Path | None, typer.Option(help="JSON profile: per-channel gain, curve, threshold "
                                                 "(and a saved calibration).")] = None,
    save_profile: Annotated[Path | None, typer.Option(help="Write the profile in use (with the calibration) "
                                                      "here when the session ends.")] = None,
    record: Annotated[Path | None, typer.Option(help="Also write a take folder (what `facecast track` writes; "
                                                "~20 % more CPU with its preview).")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    stats_json: Annotated[Path | None, typer.Option(help="Write the session's figures (frame rate, drops, "
                                                    "latency; also without the first 2 s) as JSON here.")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Start --video over at its end.")] = False,
    assets: Annotated[Path | None, typer.Option(help="Folder or .npz of the ICT model.")] = None,
) -> None:
    """Track a face live and send ARKit weights and head pose to VTuber apps, Unreal and a web viewer.

    Frames are never queued: when tracking falls behind, older frames are dropped. Every 2 s a line
    gives the frame rate, dropped frames and latency (frame decoded -> last packet sent). Ctrl-C stops;
    a --record take is complete when the command returns.
    """
    from facecast.pipelines.live.profile import Profile, load_profile
    from facecast.pipelines.live.profile import save_profile as write_profile
    from facecast.pipelines.live.recorder import Recorder
    from facecast.pipelines.live.session import LiveSession, open_source
    from facecast.pipelines.live.tracker import LiveConfig, LiveTracker
    from facecast.recon.model.morphable import MorphableModel

    chosen = [s for s in (camera, video, stream) if s is not None]
    if len(chosen) != 1:
        raise UserError("give exactly one source: --camera N, --video FILE or --stream URL")
    if not (vmc or ifacialmocap or livelink or view or record):
        raise UserError("nothing to send to: add --vmc, --ifacialmocap, --livelink, --view or --record")
    try:
        config = LiveConfig(mode=mode, smoothing=smoothing, mirror=mirror, gaze=gaze, calibrate=calibrate,
                            profile=load_profile(profile) if profile is not None else Profile(),
                            image_width=320 if view else None)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    model = MorphableModel.load(assets)
    senders = _senders(vmc, ifacialmocap, livelink, view, view_port, avatar, model)
    recorder = None
    try:
        tracker = LiveTracker(model, config)
        recorder = Recorder(record, model, tracker.fit.sparse) if record is not None else None
        source = open_source(chosen[0] if camera is None else camera, loop=loop)  # plays from the first frame taken
    except BaseException:
        for sender in senders:
            sender.close()
        if recorder is not None:
            recorder.abort()
        raise
    for sender in senders:
        if hasattr(sender, "url"):
            typer.echo(f"viewer: {sender.url}", err=True)
    if calibrate:
        typer.echo(f"calibrating: keep a neutral face for {calibrate:g} s", err=True)
    last = [0.0]

    def report(frame, stats) -> None:
        if stats.seconds - last[0] >= 2.0:
            last[0] = stats.seconds
            typer.echo(stats.line(), err=True)

    session = LiveSession(source, tracker, senders, recorder, duration)
    stats = session.run(report)
    typer.echo(("stopped: " if stats.interrupted else "done: ") + stats.line())
    if stats_json is not None:
        import json

        stats_json.write_text(json.dumps({"session": stats.to_dict(), "steady": session.steady.to_dict()}, indent=1))
    if session.recorded:
        typer.echo(f"recorded {len(session.recorded)} files in {record}")
    if save_profile is not None:
        typer.echo(f"profile written to {write_profile(tracker.profile, save_profile)}")
