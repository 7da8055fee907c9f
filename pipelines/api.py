"""The short Python API: ``facecast.reconstruct``, ``facecast.track``, ``facecast.transfer`` and ``facecast.live``.

Each call does what the command of the same name does (same outputs, same files, written
atomically) with its common options as keywords; the full option sets are the config classes of
:mod:`facecast.pipelines.commands` (pass ``config=`` to use one). Errors a user can cause
(unreadable input, no face, unwritable output, missing assets offline) raise the exceptions that
:func:`facecast.pipelines.errors.is_user_error` recognises, with a one-line message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facecast.pipelines.commands.reconstruct import ReconstructConfig
    from facecast.pipelines.commands.track import TrackJobConfig, TrackSummary
    from facecast.pipelines.commands.transfer import DriverTrack, TransferConfig
    from facecast.pipelines.live.frame import LiveFrame, Sender
    from facecast.pipelines.live.tracker import LiveConfig


def reconstruct(photo: str | Path | None = None, output: str | Path = "astronaut.glb", *, mode: str = "accurate",
                formats: tuple[str, ...] = (), all_faces: bool = False, texture: bool = True, preview: bool = True,
                assets: str | Path | None = None, config: ReconstructConfig | None = None) -> list[Path]:
    """Photo -> textured avatar: writes ``output`` (.glb/.obj/.ply), its JSON and a preview PNG.

    photo: an image file, or ``None`` for the built-in astronaut photo.
    mode: ``fast`` (regressor), ``refine`` (regressor + Levenberg-Marquardt) or ``accurate``
    (landmark + photometric fit). formats: more mesh files beside ``output`` (``(".obj", ".ply")``).
    all_faces: every face, largest first, as ``NAME_0.glb``, ``NAME_1.glb``, ...
    config: a full :class:`~facecast.pipelines.commands.reconstruct.ReconstructConfig` (``mode`` and
    ``texture`` then come from it). Returns the paths written.
    """
    from facecast.pipelines.commands.reconstruct import ReconstructConfig
    from facecast.pipelines.commands.reconstruct import reconstruct as run
    from facecast.recon.photo import PhotoConfig

    if config is None:
        config = ReconstructConfig(photo=PhotoConfig(mode=mode), bake_texture=texture)
    return run(photo, output, tuple(formats), config, assets=assets, preview=preview, all_faces=all_faces)


def track(video: str | Path, output: str | Path, *, mode: str = "accurate", preview: bool = False,
          max_frames: int | None = None, assets: str | Path | None = None,
          config: TrackJobConfig | None = None) -> TrackSummary:
    """Video -> per-frame meshes (OBJ + PC2), ARKit weights (CSV/JSONL), head pose, landmarks in folder ``output``.

    mode: ``fast``, ``refine`` or ``accurate`` (as in :func:`reconstruct`). config: a full
    :class:`~facecast.pipelines.commands.track.TrackJobConfig` (``mode``, ``preview`` and
    ``max_frames`` then come from it). Returns the run's summary (frames, seconds, files, gaps).
    """
    from facecast.pipelines.commands.track import TrackJobConfig
    from facecast.pipelines.commands.track import track as run
    from facecast.recon.fit.tracking import TrackConfig

    if config is None:
        config = TrackJobConfig(tracking=replace(TrackConfig(), mode=mode), preview=preview, max_frames=max_frames)
    return run(video, output, config, assets=assets, show_progress=False)


def transfer(driver: str | Path, target: str | Path, output: str | Path, *, formats: tuple[str, ...] = ("glb",),
             mode: str = "accurate", assets: str | Path | None = None,
             config: TransferConfig | None = None) -> tuple[list[Path], DriverTrack]:
    """Animate ``target`` (GLB/VRM with ARKit morph targets, a reconstruct JSON or a photo) with the
    expressions and head rotation of the ``driver`` video; writes ``output`` in each of ``formats``
    (``glb``, ``csv`` Live Link Face, ``pc2``, ``json``). Returns the paths written and the driver's track.
    """
    from facecast.pipelines.commands.transfer import TransferConfig
    from facecast.pipelines.commands.transfer import transfer as run

    if config is None:
        base = TransferConfig()
        tracking = replace(base.tracking, tracking=replace(base.tracking.tracking, mode=mode))
        config = replace(base, tracking=tracking, formats=tuple(formats))
    return run(driver, target, output, config, assets=assets)


def live(source: str | int | Path, *, senders: Sequence[Sender] = (), mode: str = "fast", mirror: bool = False,
         duration: float | None = None, assets: str | Path | None = None,
         config: LiveConfig | None = None) -> Iterator[LiveFrame]:
    """Live frames of a camera index (``0``), a stream URL or a video file played in real time, one per
    tracked frame, each already sent to ``senders`` (e.g.
    :class:`~facecast.pipelines.live.senders.vmc.VmcSender`)::

        for frame in facecast.live(0):
            print(frame.weight("jawOpen"), frame.yaw_pitch_roll())

    Older frames are dropped when the loop falls behind. Leaving the loop (``break``) stops the source
    and closes the senders; ``duration`` seconds end it too. config: a full
    :class:`~facecast.pipelines.live.tracker.LiveConfig` (``mode`` and ``mirror`` then come from it).
    """
    from facecast.pipelines.live.session import LiveSession, open_source
    from facecast.pipelines.live.tracker import LiveConfig, LiveTracker
    from facecast.recon.model.morphable import MorphableModel

    config = config or LiveConfig(mode=mode, mirror=mirror)
    tracker = LiveTracker(MorphableModel.load(assets), config)
    session = LiveSession(open_source(source), tracker, senders, duration=duration)
    try:
        yield from session.frames()
    finally:
        session.close()
