"""The JSON files users hand in (targets' coefficient records, VRM mappings, identities, live profiles): read
with one-line errors that name the file, and numbers checked without overflowing (JSON integers have no size
limit; ``NaN`` and ``Infinity`` are accepted by Python's parser and written by some tools)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def read_json_file(path: str | Path, what: str, error: type[Exception] = ValueError) -> object:
    """The parsed JSON of ``path``; ``error`` with ``"cannot read <what> <path>: ..."`` or ``"<what> <path> is not
    valid JSON (...)"`` when it is unreadable, not UTF-8, not JSON, or nested too deep to parse."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        detail = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        raise error(f"{what} {path} is not valid JSON ({detail})") from None


def is_finite_number(value: object) -> bool:
    """True for a JSON number (not a boolean) that is finite as a float (an integer past 1e308 is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


#: the largest identity weight a file may hold: the modes are ~N(0, 1); 10 sigma is already a caricature
MAX_IDENTITY_WEIGHT = 10.0


def identity_weights(values: object, count: int, source: str, error: type[Exception] = ValueError):
    """``(count,)`` float64 identity weights from a parsed JSON list; ``error`` naming ``source`` unless it holds
    ``count`` finite numbers of at most :data:`MAX_IDENTITY_WEIGHT` in size."""
    import numpy as np

    if not isinstance(values, list):
        raise error(f'{source} must hold {{"identity": [{count} numbers]}}')
    if len(values) != count:
        raise error(f"{source} holds {len(values)} identity weights, expected {count}")
    if not all(is_finite_number(v) for v in values):
        raise error(f"{source}: every identity weight must be a finite number")
    weights = np.asarray(values, dtype=np.float64)
    worst = int(np.argmax(np.abs(weights)))
    if abs(weights[worst]) > MAX_IDENTITY_WEIGHT:
        raise error(f"{source}: weight {worst} is {weights[worst]:g}; identity weights are about N(0, 1), at most "
                    f"{MAX_IDENTITY_WEIGHT:g} in size (a larger one is not a head)")
    return weights
