"""Mutators for fuzz tests of readers of user files (issue #18): JSON documents changed anywhere in their tree,
text files (CSV, JSON lines) changed by line, cell and byte, and a runner that classifies each case as a valid
result, a clean error, or a failure (any other exception, or too slow)."""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: values put anywhere in a JSON document: every JSON type, edge numbers, non-finite ones (Python's json writes
#: NaN / Infinity, which other writers do too)
JSON_VALUES = (None, -1, 0, 10**9, 10**400, 1e308, -1e308, float("nan"), float("inf"), "x", "", [], {}, [1, 2],
               {"a": 1}, True, 3.5, -2**31, "blendShape1.jawOpen", [float("nan")] * 3, "\u0000")

#: cells put into text tables
CELLS = ("", "x", "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e400", "0x10", "1,5", "9" * 400, " ", "\"",
         "\u00e9", "-0", "2147483648", "1.5.2", "None", "true")


def json_paths(node, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys / indices) in a parsed JSON tree, the root's ``()`` first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from json_paths(value, (*prefix, index))


def mutate_json(document, rng: random.Random, paths: list[tuple] | None = None, edits: tuple[int, int] = (1, 3)):
    """A deep copy of ``document`` with 1-3 values (anywhere: ``paths``, default all but the root) replaced by
    :data:`JSON_VALUES`, or deleted."""
    document = json.loads(json.dumps(document))
    paths = paths if paths is not None else [p for p in json_paths(document) if p]
    for _ in range(rng.randint(*edits)):
        path = rng.choice(paths)
        node = document
        try:
            for key in path[:-1]:
                node = node[key]
            if rng.random() < 0.15:
                del node[path[-1]]
            else:
                node[path[-1]] = rng.choice(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            pass
    return document


def mutate_text(data: bytes, rng: random.Random, separator: str = ",") -> bytes:
    """``data`` (a text table or JSON lines) with one random edit: a line dropped, doubled, swapped or cut, a
    cell replaced by one of :data:`CELLS`, a cell added or removed, bytes flipped or inserted, the file cut."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    kind = rng.randrange(9)
    k = rng.randrange(len(lines))
    if kind == 0:
        del lines[k]
    elif kind == 1:
        lines.insert(k, lines[k])
    elif kind == 2:
        j = rng.randrange(len(lines))
        lines[k], lines[j] = lines[j], lines[k]
    elif kind == 3:
        lines[k] = lines[k][:rng.randint(0, len(lines[k]))]
    elif kind in (4, 5):
        cells = lines[k].split(separator)
        c = rng.randrange(len(cells))
        if kind == 4:
            cells[c] = rng.choice(CELLS)
        elif rng.random() < 0.5:
            cells.insert(c, rng.choice(CELLS))
        else:
            del cells[c]
        lines[k] = separator.join(cells)
    else:
        raw = bytearray("\n".join(lines).encode("utf-8"))
        if kind == 6 and raw:
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 7:
            raw[rng.randint(0, len(raw)):rng.randint(0, len(raw))] = bytes([0xFF, 0xFE, 0x00, 0xC3])
        else:
            del raw[rng.randint(0, len(raw)):]
        return bytes(raw)
    return "\n".join(lines).encode("utf-8")


@dataclass
class FuzzReport:
    """Cases run, how each ended, and the ones that failed (not a valid result, not a clean error) or were slow."""

    cases: int = 0
    valid: int = 0
    refused: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    slow: list[tuple[int, float]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # a few of the clean errors, to read

    def run(self, case: int, attempt: Callable[[], object], check: Callable[[object], None],
            clean: tuple[type[BaseException], ...] | Callable[[BaseException], bool], limit_s: float = 2.0) -> None:
        """Run one case: ``attempt()`` must return a result that ``check`` accepts or raise a ``clean`` error."""
        self.cases += 1
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = attempt()
            check(result)
            self.valid += 1
        except Exception as exc:  # noqa: BLE001 - what the fuzz test looks for
            is_clean = clean(exc) if callable(clean) and not isinstance(clean, tuple) else isinstance(exc, clean)
            if is_clean and not isinstance(exc, AssertionError):
                self.refused += 1
                if len(self.examples) < 4:
                    self.examples.append(str(exc)[:240])
            else:
                self.failures.append((case, f"{type(exc).__name__}: {exc}"[:300]))
        seconds = time.perf_counter() - start
        if seconds > limit_s:
            self.slow.append((case, round(seconds, 2)))

    def assert_clean(self) -> None:
        assert not self.failures, f"{len(self.failures)} of {self.cases} cases failed: {self.failures[:8]}"
        assert not self.slow, f"slow cases: {self.slow[:8]}"
        assert self.valid and self.refused, (self.valid, self.refused)  # both outcomes were exercised
