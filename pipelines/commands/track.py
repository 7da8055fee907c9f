"""Video -> per-frame meshes, coefficients and an overlay preview, streamed with flat memory.

``track(video, outdir)`` writes into ``outdir`` (all files appear together at the end;
a failure leaves none of them, and existing files are only replaced on success):

- ``mesh.obj`` + ``mesh.pc2``: the head (avatar regions) at frame 0 and a PC2 point
  cache of every frame (Blender's Mesh Cache modifier, 3ds Max), same vertex order;
  or, with ``mesh_format="obj"``, ``meshes/frame_000000.obj`` ... per frame;
- ``coeffs.csv`` / ``coeffs.jsonl``: per frame the 53 ARKit-named weights, head pose
  (axis-angle, yaw/pitch/roll degrees, translation cm) and the model's 68 iBUG
  landmarks in pixels (OpenCV integer-centre convention); the JSONL also the eyes' gaze
  (``gaze_deg``: left yaw / pitch / roll, right yaw / pitch / roll, from the irises);
- ``preview.mp4``: the fitted mesh over the (downscaled) video;
- ``track.json``: summary (fps, frame count, frames without a face, identity, camera).

Meshes (mesh.obj + mesh.pc2, or the OBJ sequence) are in metres, y up; by default posed in the
camera frame but re-centred so that the head of frame 0 sits at the origin (``pose="full"``);
``"rotation"`` keeps head rotation only, ``"none"`` exports the expression alone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.pipelines.background import prefetched
from facecast.pipelines.commands.track_config import TrackJobConfig, TrackSummary
from facecast.pipelines.commands.track_outputs import TrackOutputs, prepare_outdir, remove_created
from facecast.pipelines.errors import is_no_space
from facecast.pipelines.export import ExportError, make_folder
from facecast.pipelines.media import DecodeReport, Frame, iter_frames, probe_video
from facecast.pipelines.overlay import preview_copy
from facecast.pipelines.progress import StageClock
from facecast.recon.fit.landmark_fit import threads
from facecast.recon.fit.tracking import FrameLandmarks, TrackedFrame, VideoTracker
from facecast.recon.landmarks.correspondence import SURFACE_SKIN, mediapipe478_mapping
from facecast.recon.landmarks.detector import select_faces
from facecast.recon.landmarks.mediapipe_mesh import MediaPipeDetector
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.learn.inputs import prepare_inputs
from facecast.recon.model.coeffs import PIXEL_OFFSET
from facecast.recon.model.morphable import MorphableModel

OUTPUT_BATCH = 16  # tracked frames whose landmarks and meshes are evaluated together


def _decoded(video: str | Path, config: TrackJobConfig, clock: StageClock,
             report: DecodeReport | None = None) -> Iterator[tuple[Frame, np.ndarray | None, float]]:
    """``(frame, preview-sized copy or None, preview scale)`` for every frame (run ahead on a thread)."""
    frames = iter_frames(video, config.max_frames, report)
    while True:
        start = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            return
        small, scale = preview_copy(frame.rgb, config.preview_side) if config.preview else (None, 1.0)
        clock.add("decode", time.perf_counter() - start)
        yield frame, small, scale


def landmark_stream(frames: Iterator[tuple[Frame, np.ndarray | None, float]], detector: MediaPipeDetector,
                     config: TrackJobConfig, weight: torch.Tensor, keep: deque, clock: StageClock,
                     crops: tuple[int, float] | None = None) -> Iterator[FrameLandmarks]:
    """Detect (tracking mode) and yield :class:`FrameLandmarks`.

    crops: ``(size, crop_scale)`` of an image-branch regressor: each frame carries its face crop.

    Appends ``(index, preview image or None, preview scale)`` of every frame to ``keep``
    so the caller can draw the preview when the (lagging) tracker emits that frame.
    """
    current: list[tuple[int, float, np.ndarray, float]] = []

    def images() -> Iterator[np.ndarray]:
        for frame, small, scale in frames:
            keep.append((frame.index, small, scale))
            current[:] = [(frame.index, frame.time, frame.rgb, time.perf_counter())]
            yield frame.rgb

    for faces in detector.track(images()):
        index, when, rgb, handed = current[0]
        clock.add("detect", time.perf_counter() - handed)
        points = crop = None
        if len(faces) > config.face_index:
            face = select_faces(faces, config.face_index, source=f"frame {index}")[0]
            points = torch.tensor(face.points + PIXEL_OFFSET, dtype=torch.float32)
            if crops is not None:  # the image-branch regressor's crop, cut while the frame is at hand
                crop = prepare_inputs([face], [rgb], *crops).crops[0]
        yield FrameLandmarks(index, when, rgb.shape[:2], points, None if points is None else weight, crop)


def _progress(total: int, enabled: bool):
    from facecast.pipelines.progress import progress_bar

    return progress_bar("tracking", ("{task.fields[fps]:.1f} frames/s",), enabled), total or None


@dataclass
class VideoFit:
    """Shared pieces of a tracking run: the model, the sparse landmarks and the tracker."""

    model: MorphableModel
    sparse: SparseLandmarks
    tracker: VideoTracker
    weight: torch.Tensor

    @classmethod
    def build(cls, model: MorphableModel, config: TrackJobConfig) -> VideoFit:
        mapping = mediapipe478_mapping(view_offsets=config.view_offsets)
        sparse = SparseLandmarks.build(model, mapping)
        weight = torch.where(torch.as_tensor(mapping.surface == SURFACE_SKIN), 1.0, config.iris_weight)
        regressor = None
        if config.tracking.mode != "accurate":
            from facecast.recon.learn.regressor import load_regressor, shipped_regressor_path

            regressor = load_regressor(config.regressor or shipped_regressor_path())
        return cls(model, sparse, VideoTracker(sparse, config.tracking, regressor), weight)


def iter_tracked(video: str | Path, fit: VideoFit, config: TrackJobConfig, clock: StageClock | None = None,
                 report: DecodeReport | None = None) -> Iterator[tuple[TrackedFrame, np.ndarray | None, float]]:
    """Yield ``(tracked frame, preview image or None, preview scale)`` in frame order.

    clock: counts ``decode`` (on the read-ahead thread), ``detect`` (MediaPipe) and ``fit`` seconds;
    report: gets the packets decoding skipped (:class:`~facecast.pipelines.media.DecodeReport`).
    Raises :class:`~facecast.recon.landmarks.detector.NoFaceError` when no frame shows a face.
    """
    from facecast.recon.landmarks.detector import NoFaceError
    from facecast.recon.landmarks.mediapipe_mesh import MediaPipeConfig

    clock = clock or StageClock()
    keep: deque = deque()
    detector_config = MediaPipeConfig(max_num_faces=max(1, config.face_index + 1))
    with MediaPipeDetector(detector_config) as detector:
        frames = prefetched(_decoded(video, config, clock, report))
        stream = landmark_stream(frames, detector, config, fit.weight, keep, clock, fit.tracker.crop_geometry)
        tracked_frames = fit.tracker.run(stream)
        if config.tracking.mode == "fast" and config.fast_smoothing:
            from facecast.pipelines.commands.smoothing import smooth_tracked

            tracked_frames = smooth_tracked(tracked_frames)
        try:
            while True:
                start, detected = time.perf_counter(), clock.seconds.get("detect", 0.0)
                tracked = next(tracked_frames, None)
                clock.add("fit", time.perf_counter() - start - (clock.seconds.get("detect", 0.0) - detected))
                if tracked is None:
                    return
                while keep and keep[0][0] < tracked.index:
                    keep.popleft()
                _, small, scale = keep.popleft()
                yield tracked, small, scale
        except ValueError as exc:
            if "no frame with a face" in str(exc):
                raise NoFaceError(f"{video}: no face found in the video") from exc
            raise


def _torch_threads(config: TrackJobConfig) -> int:
    """torch's intra-op threads while tracking: 1 in fast mode, else as set.

    The fast path's ops are small (one regressor pass, 16-frame mesh batches) and MediaPipe's graph
    wants the second core: with one torch thread a fast frame costs 16.2 ms of CPU instead of 18.6
    at the same frame rate (1,000 frames, 2 cores). The landmark solver of accurate mode gains from
    two (24.1 frames/s against 22.1 with one).
    """
    return 1 if config.tracking.mode == "fast" else torch.get_num_threads()


def track(video: str | Path, outdir: str | Path, config: TrackJobConfig = TrackJobConfig(),
          model: MorphableModel | None = None, assets: str | Path | None = None,
          show_progress: bool = True) -> TrackSummary:
    """Track the face of ``video`` and write the outputs listed in the module docstring.

    ``track.json`` and the summary's ``stages`` give the wall seconds of each stage: ``start``
    (model, detector and tracker set up), ``decode`` and ``preview`` (on threads of their own,
    overlapping the others), ``detect`` (MediaPipe), ``fit``, ``outputs`` (meshes and point cache
    streamed to disk) and, in the summary only, ``write`` (coefficient files, publishing).
    """
    clock = StageClock()
    start = time.perf_counter()
    report = DecodeReport()
    with clock.stage("start"):
        info = probe_video(video)
        outdir, created = prepare_outdir(outdir)
        model = model or MorphableModel.load(assets)
        fit = VideoFit.build(model, config)
    frames = info.n_frames if config.max_frames is None else min(config.max_frames, info.n_frames or config.max_frames)
    progress, total = _progress(frames, show_progress)
    outputs = None
    try:
        make_folder(outdir)
        outputs = TrackOutputs(outdir, model, config, info.fps, clock)
        with progress, threads(_torch_threads(config)):
            task = progress.add_task("track", total=total, fps=0.0)
            pending: list = []
            for item in iter_tracked(video, fit, config, clock, report):
                pending.append(item)
                if len(pending) == OUTPUT_BATCH:
                    outputs.add_batch(pending, fit.sparse)
                    pending = []
                    done = len(outputs.rows)
                    progress.update(task, completed=done, fps=done / (time.perf_counter() - start))
            if pending:
                outputs.add_batch(pending, fit.sparse)
            progress.update(task, completed=len(outputs.rows))
        with clock.stage("write"):
            summary = {"video": str(video), "fps": info.fps, "frames": len(outputs.rows),
                       "frames_without_face": fit.tracker.gaps, "pose": config.pose,
                       "mesh_format": config.mesh_format, "units": "m, y up",
                       "packets_skipped_at_s": report.skipped}
            files = outputs.commit(summary)
    except BaseException as exc:  # also SIGTERM (SystemExit) and Ctrl-C
        if outputs is not None:
            outputs.abort()
        remove_created(outdir, created)  # a failed run leaves no empty folder of its own behind
        if isinstance(exc, OSError) and is_no_space(exc):
            raise ExportError(f"no space left on the disk of {outdir} ({exc.strerror}); the partial take was "
                              "removed: free some space, or write elsewhere with -o") from None
        raise
    warning = report.warning(video)
    return TrackSummary(len(outputs.rows), info.fps, fit.tracker.gaps, files, time.perf_counter() - start,
                        clock.rounded(), [warning] if warning else [])
