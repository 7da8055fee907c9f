"""What ``facecast track`` writes, streamed frame by frame into a temporary folder inside the output
folder and published all together at the end (:class:`TrackOutputs`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from facecast.pipelines.background import Consumer
from facecast.pipelines.commands.track_config import TrackJobConfig
from facecast.pipelines.export import ExportError, check_output
from facecast.pipelines.export.avatar import build_avatar
from facecast.pipelines.export.coefficients import CoefficientTrack, export_coefficients_csv, export_coefficients_jsonl
from facecast.pipelines.export.layout import MeshOptions
from facecast.pipelines.export.obj import export_obj
from facecast.pipelines.export.pc2 import Pc2Writer
from facecast.pipelines.overlay import LineOverlay
from facecast.pipelines.progress import StageClock
from facecast.recon.fit.tracking import TrackedFrame
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.photo import model_landmarks
from facecast.render.preview import VideoWriter

TEMP_PREFIX = ".facecast-track-"
#: the files a take may hold (``meshes/`` is the folder of the OBJ-sequence format)
OUTPUT_FILES = ("mesh.obj", "mesh.pc2", "coeffs.csv", "coeffs.jsonl", "track.json", "preview.mp4")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(outdir: Path) -> list[Path]:
    """Remove the temporary folders that killed runs (SIGKILL, power loss) left in ``outdir``: those whose
    process (its id is in the name) is gone, and nameless old ones a day after they were last touched."""
    removed = []
    for folder in outdir.glob(f"{TEMP_PREFIX}*"):
        owner = folder.name[len(TEMP_PREFIX):].split("-")[0]
        if not folder.is_dir():
            continue
        stale = not _alive(int(owner)) if owner.isdigit() else time.time() - folder.stat().st_mtime > 86400
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class TrackOutputs:
    """Streams results into a temporary folder inside ``outdir``; :meth:`commit` publishes them."""

    def __init__(self, outdir: Path, model: MorphableModel, config: TrackJobConfig, fps: float, clock: StageClock):
        self.outdir, self.config, self.model, self.fps, self.clock = outdir, config, model, fps, clock
        remove_stale(outdir)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=outdir))
        try:
            self._open(outdir, model, config, fps, clock)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _open(self, outdir: Path, model: MorphableModel, config: TrackJobConfig, fps: float,
              clock: StageClock) -> None:
        self.avatar = build_avatar(model, np.zeros(100), config.regions)
        self.mesh = model.subset(self.avatar.source_vertex_ids)  # only the exported vertices
        self.pc2 = Pc2Writer(self.tmp / "mesh.pc2", self.mesh.n_vertices, sample_rate=1.0) \
            if config.mesh_format == "pc2" else None
        self.video = self.preview = None
        if config.preview:  # drawn and encoded on a thread of its own, frame by frame
            self.video = VideoWriter(self.tmp / "preview.mp4", fps=fps, crf=26, preset="ultrafast")
            overlay = LineOverlay()

            def draw(item: tuple) -> None:
                with clock.stage("preview"):
                    self.video.write(overlay.draw(*item))

            self.preview = Consumer(draw)
        self.rows: list[np.ndarray] = []  # (59,) expression, rotation, translation: the coefficient files
        self.first: FaceCoeffs | None = None  # are written at the end; identity and camera from frame 0
        self.landmarks: list[np.ndarray] = []
        self.origin: torch.Tensor | None = None
        self._identity: tuple[torch.Tensor, torch.Tensor] | None = None  # (identity, its unposed head)

    def vertices(self, c: FaceCoeffs) -> np.ndarray:
        """``(B, V, 3)`` float32 cm: the exported heads of B frames, posed as ``config.pose`` says."""
        zeros = torch.zeros_like(c.rotation)
        rotation = zeros if self.config.pose == "none" else c.rotation
        translation = c.translation if self.config.pose == "full" else zeros
        if self.origin is None:
            self.origin = translation[:1].clone()
        with torch.no_grad():
            first = c.identity[:1]
            if not bool((c.identity == first).all()):  # frames of several identities: no sharing
                shape = self.mesh.identity_shape(c.identity)
            else:
                if self._identity is None or not torch.equal(self._identity[0], first):
                    self._identity = first.clone(), self.mesh.identity_shape(first)
                shape = self._identity[1]
            v = self.mesh.expressed(shape, c.expression, rotation, translation - self.origin)
        return v.cpu().numpy().astype(np.float32)

    def add_batch(self, items: list[tuple[TrackedFrame, np.ndarray | None, float]], sparse: SparseLandmarks) -> None:
        """Outputs of consecutive tracked frames ``(frame, preview image or None, preview scale)``: their
        landmarks and meshes evaluated in one batch (a frame at a time costs several times more)."""
        with self.clock.stage("outputs"):
            coeffs = FaceCoeffs.cat([frame.coeffs for frame, _, _ in items])
            l68, l478 = model_landmarks(sparse, coeffs)
            vertices = self.vertices(coeffs)
            for k, (frame, small, scale) in enumerate(items):
                preview = None if small is None else (l478[k], small, l68[k], scale)
                self.add(frame, vertices[k], l68[k], preview)

    def add(self, frame: TrackedFrame, vertices: np.ndarray, landmarks: np.ndarray, preview: tuple | None) -> None:
        """One frame's outputs; ``preview``: the arguments of :meth:`LineOverlay.draw`, or ``None``."""
        if self.pc2 is not None:
            if self.first is None:  # the OBJ holds the first frame's mesh, the PC2 every frame's
                mesh = replace(self.avatar, vertices=vertices)
                (self.tmp / "mesh.obj").write_bytes(export_obj(mesh))
            self.pc2.append(vertices * np.float32(MeshOptions().scale))  # the OBJ's units
        else:
            folder = self.tmp / "meshes"
            folder.mkdir(exist_ok=True)
            (folder / f"frame_{frame.index:06d}.obj").write_bytes(export_obj(replace(self.avatar, vertices=vertices)))
        c = frame.coeffs
        if self.first is None:
            self.first = c
        gaze = torch.zeros(6, dtype=torch.float64) if frame.gaze is None else torch.as_tensor(frame.gaze)
        self.rows.append(torch.cat([c.expression[0].double(), c.rotation[0].double(), c.translation[0].double(),
                                    gaze.double()]).numpy())
        self.landmarks.append(landmarks)
        if preview is not None and self.preview is not None:
            self.preview.put(preview)

    def commit(self, summary: dict) -> list[Path]:
        rows = np.stack(self.rows)
        track = CoefficientTrack(
            frame=np.arange(len(rows)), time=np.arange(len(rows)) / self.fps,
            names=tuple(self.model.expression_names), expression=rows[:, :53],
            rotation=rows[:, 53:56], translation=rows[:, 56:59], landmarks=np.stack(self.landmarks),
            gaze=rows[:, 59:65])
        (self.tmp / "coeffs.csv").write_bytes(export_coefficients_csv(track))
        (self.tmp / "coeffs.jsonl").write_bytes(export_coefficients_jsonl(track))
        if self.pc2 is not None:
            self.pc2.close()
        if self.preview is not None:
            self.preview.close()
            self.video.close() if self.video.frames else self.video.abort()
        summary["stage_seconds"] = self.clock.rounded()
        first = self.first
        summary["identity"] = first.identity[0].tolist()
        summary["camera"] = {"focal_px": float(first.focal[0]),
                             "principal_px": (first.principal[0].double() - PIXEL_OFFSET).tolist()}
        (self.tmp / "track.json").write_text(json.dumps(summary, indent=1))
        return self._publish()

    def _publish(self) -> list[Path]:
        items = sorted(self.tmp.iterdir())
        for item in items:  # every name checked before any is moved: all files appear, or none
            final = self.outdir / item.name
            if final.exists() and final.is_dir() != item.is_dir():
                kind = "a folder" if final.is_dir() else "a file"
                raise ExportError(f"cannot write {final}: {kind} of that name is in the way; move it or use "
                                  "another -o folder (nothing was written)")
        written = []
        for item in items:
            final = self.outdir / item.name
            if final.is_dir() and item.is_dir():
                shutil.rmtree(final)
            os.replace(item, final)
            written.append(final)
        self.abort()
        return written

    def abort(self) -> None:
        if self.pc2 is not None and not self.pc2.closed:
            self.pc2.abort()
        if self.preview is not None:
            try:
                self.preview.close()
            except Exception:  # noqa: BLE001 - the run failed already; its error is the one to report
                pass
        if self.video is not None and not self.video.closed:
            self.video.abort()
        shutil.rmtree(self.tmp, ignore_errors=True)


def prepare_outdir(outdir: str | Path) -> tuple[Path, Path | None]:
    """Check ``outdir`` (:class:`ExportError` when it is a file or not writable); returns it and the topmost
    of its folders that do not exist yet (None if it exists): the run creates them when its outputs
    start and removes them again if it fails."""
    outdir = Path(outdir)
    check_output(outdir / "mesh.obj")
    for name in OUTPUT_FILES:  # found before the work, not after it
        if (outdir / name).is_dir():
            raise ExportError(f"cannot write {outdir / name}: a folder of that name is in the way; move it or "
                              "use another -o folder")
    return outdir, next((p for p in reversed((outdir, *outdir.parents)) if not p.exists()), None)


def remove_created(outdir: Path, created: Path | None) -> None:
    """Remove the empty folders a failed run created (``created``: :func:`prepare_outdir`'s second value),
    from ``outdir`` up; a folder that is not empty stays."""
    if created is None:
        return
    for folder in (outdir, *outdir.parents):
        if folder == created.parent:
            break
        try:
            folder.rmdir()
        except OSError:
            break
