"""``facecast live --record take/``: what ``facecast track`` writes (mesh.obj + mesh.pc2, coeffs.csv /
.jsonl, preview.mp4, track.json), written while streaming, on a thread of its own so the live frames
never wait for it. Everything appears in the folder together when the session ends (also on Ctrl-C);
a session that fails leaves nothing behind.

A live take has the frames the tracker handled: frames the source dropped are not in it. Its frame rate
(``track.json`` ``fps``, the coefficient files' times) is the rate achieved over the session.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from facecast.pipelines.background import Consumer
from facecast.pipelines.commands.track_config import TrackJobConfig
from facecast.pipelines.commands.track_outputs import TrackOutputs, prepare_outdir, remove_created
from facecast.pipelines.export import make_folder
from facecast.pipelines.overlay import preview_copy
from facecast.pipelines.progress import StageClock
from facecast.recon.fit.tracking import TrackedFrame

BATCH = 16  # tracked frames whose meshes are evaluated together (as facecast track does)


class Recorder:
    """Collects tracked frames (:meth:`add`) into a take folder; :meth:`close` publishes it, :meth:`abort`
    throws it away. ``preview``: also draw preview.mp4 (the mesh over the picture, ~20 % more CPU)."""

    def __init__(self, outdir: str | Path, model, sparse, preview: bool = True, preview_side: int = 640) -> None:
        self.outdir, self._created = prepare_outdir(outdir)
        self._sparse = sparse
        self._config = TrackJobConfig(preview=preview, preview_side=preview_side)
        make_folder(self.outdir)
        self._outputs = TrackOutputs(self.outdir, model, self._config, 30.0, StageClock())
        self._batch: list = []
        self._start: float | None = None
        self._last: float | None = None
        self._writer = Consumer(self._write, depth=4 * BATCH)
        self.frames = 0

    def _write(self, item: tuple | None) -> None:
        if item is not None:
            self._batch.append(item)
        if self._batch and (item is None or len(self._batch) == BATCH):
            self._outputs.add_batch(self._batch, self._sparse)
            self._batch = []

    def add(self, tracked: TrackedFrame, rgb: np.ndarray | None) -> None:
        """One tracked frame and its picture (for the preview; None without)."""
        now = time.perf_counter()
        self._start = now if self._start is None else self._start
        self._last = now
        wanted = rgb is not None and self._config.preview
        small, scale = preview_copy(rgb, self._config.preview_side) if wanted else (None, 1.0)
        self._writer.put((tracked, small, scale))
        self.frames += 1

    def close(self, summary: dict) -> list[Path]:
        """Finish writing and publish the take; returns its files."""
        try:
            self._writer.put(None)
            self._writer.close()
            if not self._outputs.rows:
                raise ValueError("the take has no frame with a face; nothing recorded")
            elapsed = (self._last or 0.0) - (self._start or 0.0)
            fps = (self.frames - 1) / elapsed if self.frames > 1 and elapsed > 0 else 30.0
            self._outputs.fps = fps
            return self._outputs.commit({**summary, "fps": fps, "frames": len(self._outputs.rows), "live": True})
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Throw the take away (and the folder, when this take created it)."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the take is discarded anyway
            pass
        self._outputs.abort()
        remove_created(self.outdir, self._created)
