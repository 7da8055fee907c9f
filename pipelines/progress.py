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
