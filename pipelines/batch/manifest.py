"""The batch manifest: one SQLite row per input, ``<output>/manifest.sqlite``.

Why SQLite (stdlib ``sqlite3``, WAL journal) rather than JSON lines: every status
change is one small transaction that survives ``kill -9`` intact (a JSON-lines
writer killed mid-line leaves a torn record, and updates would need last-line-wins
replay and compaction); rows are updated in place, so the file stays one row per
input however many reruns; and users can query it (``sqlite3 out/manifest.sqlite
"select path, error_message from inputs where status='failed'"``). Only the process
that runs the batch writes to it; workers never touch it.

A row is keyed by the input's output folder (``key``), so moving the footage folder
and rerunning finds the finished inputs again (their sha256 is unchanged).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from facecast.pipelines.batch.jobs import BatchUsageError
from facecast.pipelines.errors import exception_chain, is_no_space

STATUSES = ("pending", "running", "done", "failed", "skipped")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS inputs (
    key           TEXT PRIMARY KEY,
    path          TEXT NOT NULL,
    size          INTEGER,
    mtime         REAL,
    sha256        TEXT,
    recipe        TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    outputs       TEXT NOT NULL DEFAULT '[]',
    frames        INTEGER NOT NULL DEFAULT 0,
    seconds       REAL,
    error_type    TEXT,
    error_message TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    worker        TEXT,
    started_at    TEXT,
    finished_at   TEXT
)
"""


@dataclass(frozen=True)
class InputFacts:
    """What the batch layer saw of an input file: size, mtime, sha256 (None when unreadable)."""

    size: int | None
    mtime: float | None
    sha256: str | None


@dataclass(frozen=True)
class ManifestRow:
    """One input's record. ``outputs`` are paths relative to the batch output folder.

    ``recipe`` fingerprints the job and the options that affect its outputs; ``seconds``
    is the job's compute time; times are ISO 8601 UTC.
    """

    key: str
    path: str
    size: int | None
    mtime: float | None
    sha256: str | None
    recipe: str
    status: str
    outputs: tuple[str, ...]
    frames: int
    seconds: float | None
    error_type: str | None
    error_message: str | None
    attempts: int
    worker: str | None
    started_at: str | None
    finished_at: str | None


class DiskFullError(BatchUsageError):
    """The disk of the batch output folder is full: the batch stops; finished inputs stay done."""


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception it was raised from is "no space left" (ENOSPC, EDQUOT, SQLITE_FULL)."""
    return is_no_space(exc) or any(
        isinstance(e, DiskFullError) or (isinstance(e, sqlite3.OperationalError)
                                         and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL)
        for e in exception_chain(exc))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Manifest:
    """Read and update the manifest; use as a context manager (closes the connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise BatchUsageError(f"cannot open the batch manifest {self.path}: {exc}") from exc
        self._execute("PRAGMA journal_mode=WAL")
        self._execute("PRAGMA synchronous=NORMAL")
        self._execute(_SCHEMA)

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """One statement (its own transaction); SQLite errors become one-line user errors naming the file.

        A failed write changes nothing (SQLite rolls the statement back), so the rows stay consistent.
        """
        try:
            return self._db.execute(sql, params)
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            if is_disk_full(exc):
                raise DiskFullError(f"no space left on the disk holding the batch manifest {self.path}") from exc
            raise self._unusable(exc) from None

    def _unusable(self, exc: BaseException) -> BatchUsageError:
        return BatchUsageError(f"cannot use the batch manifest {self.path}: {one_line(str(exc), 160)} (damaged, "
                               "or not a facecast manifest: move it away and rerun to start the batch afresh)")

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def get(self, key: str) -> ManifestRow | None:
        """The row of ``key``, or None when the input was never seen."""
        rows = self._select("SELECT * FROM inputs WHERE key = ?", (key,))
        return rows[0] if rows else None

    def rows(self) -> list[ManifestRow]:
        """All rows, sorted by key."""
        return self._select("SELECT * FROM inputs ORDER BY key")

    def _select(self, sql: str, params: tuple = ()) -> list[ManifestRow]:
        """Rows of a query; a file damaged past SQLite's own checks (bad text, unknown columns) is a user error."""
        cursor = self._execute(sql, params)
        try:
            return [_to_row(cursor, row) for row in cursor.fetchall()]
        except (sqlite3.Error, UnicodeDecodeError, TypeError, ValueError) as exc:
            raise self._unusable(exc) from None

    def observe(self, key: str, path: str, facts: InputFacts, recipe: str) -> ManifestRow:
        """Record this run's view of an input; a new, changed or re-optioned input becomes pending."""
        old = self.get(key)
        if old is None or old.sha256 != facts.sha256 or old.recipe != recipe:
            self._execute(
                "INSERT OR REPLACE INTO inputs (key, path, size, mtime, sha256, recipe, status) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                (key, path, facts.size, facts.mtime, facts.sha256, recipe))
        else:
            self._execute("UPDATE inputs SET path = ?, size = ?, mtime = ? WHERE key = ?",
                             (path, facts.size, facts.mtime, key))
        return self.get(key)

    def mark_running(self, key: str) -> None:
        """The input was handed to a worker: one more attempt."""
        self._execute(
            "UPDATE inputs SET status = 'running', attempts = attempts + 1, started_at = ?, "
            "finished_at = NULL, error_type = NULL, error_message = NULL WHERE key = ?",
            (_now(), key))

    def mark_pending(self, key: str) -> None:
        """Hand the input back: it was started but not finished (the batch stopped)."""
        self._execute("UPDATE inputs SET status = 'pending', started_at = NULL WHERE key = ? AND status = 'running'",
                      (key,))

    def mark_done(self, key: str, outputs: tuple[str, ...], frames: int, seconds: float,
                  worker: str) -> None:
        """The input's outputs are in place."""
        self._execute(
            "UPDATE inputs SET status = 'done', outputs = ?, frames = ?, seconds = ?, worker = ?, "
            "finished_at = ?, error_type = NULL, error_message = NULL WHERE key = ?",
            (json.dumps(list(outputs)), frames, seconds, worker, _now(), key))

    def mark_failed(self, key: str, error_type: str, message: str, seconds: float | None,
                    worker: str | None) -> None:
        """The input failed; ``message`` is kept to one line."""
        self._execute(
            "UPDATE inputs SET status = 'failed', outputs = '[]', frames = 0, seconds = ?, "
            "worker = ?, finished_at = ?, error_type = ?, error_message = ? WHERE key = ?",
            (seconds, worker, _now(), error_type, one_line(message), key))

    def mark_skipped(self, key: str, path: str, recipe: str, reason: str) -> None:
        """The job does not take this kind of file."""
        self._execute(
            "INSERT OR REPLACE INTO inputs (key, path, recipe, status, error_message, finished_at) "
            "VALUES (?, ?, ?, 'skipped', ?, ?)", (key, path, recipe, one_line(reason), _now()))


def one_line(text: str, limit: int = 500) -> str:
    """``text`` with whitespace runs collapsed, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _to_row(cursor: sqlite3.Cursor, row: tuple) -> ManifestRow:
    values = dict(zip((c[0] for c in cursor.description), row, strict=True))
    values["outputs"] = tuple(json.loads(values["outputs"]))
    return ManifestRow(**values)
