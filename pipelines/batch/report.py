"""What a batch reports: the typed summary, the live progress display, the final table.

The progress display and the table go to stderr (rich); the machine-readable summary
(:meth:`BatchSummary.to_dict`) is what ``--json`` prints on stdout.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from facecast.pipelines.batch.manifest import ManifestRow


@dataclass(frozen=True)
class InputReport:
    """One input at the end of a batch.

    ``ran`` is True when this run processed it (False: kept from an earlier run, or
    skipped); ``outputs`` are relative to the batch output folder.
    """

    path: str
    key: str
    status: str
    ran: bool
    outputs: tuple[str, ...]
    frames: int
    seconds: float | None
    attempts: int
    error_type: str | None
    error_message: str | None

    @classmethod
    def from_row(cls, row: ManifestRow, ran: bool) -> InputReport:
        return cls(row.path, row.key, row.status, ran, row.outputs, row.frames, row.seconds,
                   row.attempts, row.error_type, row.error_message)


@dataclass(frozen=True)
class BatchSummary:
    """The result of :func:`facecast.pipelines.batch.runner.run`.

    Attributes:
        job, engine, workers: what ran. output_dir, manifest: where (absolute paths).
        inputs: every input of the batch in key order.
        wall_seconds: duration of the whole run.
    """

    job: str
    engine: str
    workers: int
    output_dir: str
    manifest: str
    inputs: tuple[InputReport, ...]
    wall_seconds: float

    def count(self, status: str) -> int:
        """Inputs whose final status is ``status``."""
        return sum(i.status == status for i in self.inputs)

    @property
    def processed(self) -> int:
        """Inputs this run processed (done or failed now)."""
        return sum(i.ran for i in self.inputs)

    @property
    def unchanged(self) -> int:
        """Inputs done in an earlier run and left as they were."""
        return sum(i.status == "done" and not i.ran for i in self.inputs)

    @property
    def frames(self) -> int:
        """Frames processed by this run."""
        return sum(i.frames for i in self.inputs if i.ran and i.status == "done")

    @property
    def exit_code(self) -> int:
        """0 when no input is failed, else 1."""
        return 1 if self.count("failed") else 0

    def to_dict(self) -> dict:
        """JSON-ready summary: totals, rates over this run, and every input."""
        minutes = max(self.wall_seconds, 1e-9) / 60
        totals = {s: self.count(s) for s in ("done", "failed", "skipped")}
        totals.update(processed=self.processed, unchanged=self.unchanged, inputs=len(self.inputs))
        return {
            "job": self.job, "engine": self.engine, "workers": self.workers,
            "output_dir": self.output_dir, "manifest": self.manifest, "totals": totals,
            "frames": self.frames, "wall_seconds": round(self.wall_seconds, 3),
            "files_per_minute": round(self.processed / minutes, 2),
            "frames_per_second": round(self.frames / (minutes * 60), 2),
            "exit_code": self.exit_code,
            "inputs": [asdict(i) | {"outputs": list(i.outputs)} for i in self.inputs],
        }


class BatchProgress:
    """Live display on stderr: files done/failed of those to process, frames/s, ETA.

    ``enabled=False`` makes every method a no-op (the Python API's default).
    """

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.done = self.failed = self.frames = 0
        self._start = time.perf_counter()
        self._progress = self._task = None

    def __enter__(self) -> BatchProgress:
        if self.enabled and self.total:
            from facecast.pipelines.progress import progress_bar

            self._progress = progress_bar("[bold]batch", (
                "[green]{task.fields[done]} done [red]{task.fields[failed]} failed", "{task.fields[rate]} frames/s"))
            self._progress.start()
            self._task = self._progress.add_task("batch", total=self.total, done=0, failed=0,
                                                 rate="0.0")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, ok: bool, frames: int) -> None:
        """One input finished."""
        self.done += ok
        self.failed += not ok
        self.frames += frames
        if self._progress is not None:
            rate = self.frames / max(time.perf_counter() - self._start, 1e-9)
            self._progress.update(self._task, advance=1, done=self.done, failed=self.failed,
                                  rate=f"{rate:.1f}")


def print_summary(summary: BatchSummary) -> None:
    """A table of totals and one line per failed input, on stderr."""
    from rich.console import Console
    from rich.table import Table

    data = summary.to_dict()
    totals = data["totals"]
    table = Table(title=f"facecast batch: {summary.job}, {summary.engine}, {summary.workers} workers",
                  show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("detail")
    table.add_row("done", str(totals["done"]), f"{totals['unchanged']} unchanged from earlier runs")
    table.add_row("failed", str(totals["failed"]), "")
    table.add_row("skipped", str(totals["skipped"]), "not read by this job")
    table.add_row("processed", str(totals["processed"]),
                  f"{data['files_per_minute']} files/min in {data['wall_seconds']} s")
    table.add_row("frames", str(data["frames"]), f"{data['frames_per_second']} frames/s")
    console = Console(stderr=True)
    console.print(table)
    problems = [i for i in summary.inputs if i.status in ("failed", "skipped")]
    if problems:
        detail = Table("status", "input", "error", "attempts", title="failed and skipped inputs")
        for item in problems:
            error = f"{item.error_type}: {item.error_message}" if item.error_type else item.error_message
            detail.add_row(item.status, item.path, error or "", str(item.attempts))
        console.print(detail)
    console.print(f"manifest: {summary.manifest}", soft_wrap=True)
