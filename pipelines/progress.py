"""Progress bars on stderr for long work (tracking, batches), in one style."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar(label: str, fields: tuple[str, ...] = (), enabled: bool = True) -> Progress:
    """A ``rich`` progress bar on stderr: ``label``, the bar, done/total, the text columns ``fields``
    (rich markup over ``task.fields``), time elapsed and the ETA. ``enabled=False``: it draws nothing."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), *(TextColumn(f) for f in fields),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=False)


class StageClock:
    """Wall seconds spent per named stage of a run. Stages on other threads (decoding, the preview)
    overlap the main thread's, so the stages add up to more than the run's wall time."""

    def __init__(self) -> None:
        import threading

        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Count ``seconds`` more for ``stage``."""
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def stage(self, name: str):
        """A context manager timing its block as ``name``."""
        from contextlib import contextmanager
        from time import perf_counter

        @contextmanager
        def timed():
            start = perf_counter()
            try:
                yield
            finally:
                self.add(name, perf_counter() - start)

        return timed()

    def rounded(self) -> dict[str, float]:
        """``{stage: seconds}`` rounded to milliseconds, in the order the stages first ran."""
        with self._lock:
            return {name: round(value, 3) for name, value in self.seconds.items()}
