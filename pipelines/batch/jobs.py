"""Batch jobs: the interface one per-input job implements and its typed options.

A :class:`Job` turns one input file (a photo, a video) into a few output files. The
batch layer calls ``job.run(input_path, output_dir, options, model)`` in worker
processes (local processes or Ray tasks), so every function a job holds must be a
module-level function (picklable by reference). ``output_dir`` is a fresh temporary
folder; the batch layer moves it into place only when ``run`` returns, so a job
never has to write atomically itself.

Options are a dataclass per job (flat fields of ``int``, ``float``, ``bool``, ``str``,
``Path``, ``tuple[str, ...]`` or ``X | None`` can be set from the command line with
``-O key=value``; tuples as comma-separated text). Fields whose metadata says
``{"affects_output": False}`` (:data:`NO_OUTPUT_EFFECT`: delays, devices, fault
injection) do not change the outputs, so changing them does not make a rerun
recompute finished inputs.

The registry of jobs by name is :mod:`facecast.pipelines.batch.registry`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from facecast.pipelines.errors import UserError

OptionsT = TypeVar("OptionsT")

#: Field metadata of options that do not change what a job writes.
NO_OUTPUT_EFFECT: Mapping[str, bool] = types.MappingProxyType({"affects_output": False})

#: The job ``facecast batch`` runs when none is named.


class BatchUsageError(UserError, ValueError):
    """A batch cannot start as asked (no inputs, unknown job, bad option); the message says why.

    A :class:`~facecast.pipelines.errors.UserError`: the CLI prints one line and exits 2.
    """


@dataclass(frozen=True)
class JobResult:
    """What one job run wrote: file names relative to its output folder, frames, compute seconds."""

    outputs: tuple[str, ...]
    frames: int
    seconds: float


def _no_model(options: object) -> None:
    return None


@dataclass(frozen=True)
class Job(Generic[OptionsT]):
    """One kind of per-input work.

    Attributes:
        name: registry name (``probe``, ``track``, ``reconstruct``, ``transfer``, ...).
        options_type: dataclass of the job's options, all fields with defaults.
        run: ``(input_path, output_dir, options, model) -> JobResult``; writes only inside
            ``output_dir`` and raises (e.g. ``MediaError``) on a bad input.
        outputs_for: ``(input_path, options) -> file names`` that ``run`` writes.
        suffixes: lower-case file suffixes the job reads; other files are ``skipped``.
        load: ``(options) -> model``, called once per worker process and options
            (network weights, detectors); the result is passed to every ``run``.
    """

    name: str
    options_type: type[OptionsT]
    run: Callable[[Path, Path, OptionsT, Any], JobResult]
    outputs_for: Callable[[Path, OptionsT], tuple[str, ...]]
    suffixes: frozenset[str]
    load: Callable[[OptionsT], Any] = _no_model


def make_options(job: Job[OptionsT], values: OptionsT | Mapping[str, object] | None) -> OptionsT:
    """Options of ``job`` from an instance, a mapping (strings are converted), or defaults."""
    kind = job.options_type
    if not dataclasses.is_dataclass(kind):
        raise TypeError(f"options of job {job.name} must be a dataclass, not {kind!r}")
    if isinstance(values, kind):
        return values
    if values is not None and not isinstance(values, Mapping):
        raise BatchUsageError(f"options of job {job.name} must be a {kind.__name__} or a mapping")
    hints = typing.get_type_hints(kind)
    known = {f.name for f in dataclasses.fields(kind)}
    converted = {}
    for key, value in (values or {}).items():
        if key not in known:
            raise BatchUsageError(f"job {job.name} has no option {key!r}; options: "
                                  f"{', '.join(sorted(known)) or 'none'}")
        converted[key] = _convert(key, value, hints[key]) if isinstance(value, str) else value
    try:
        return kind(**converted)
    except (TypeError, ValueError) as exc:
        raise BatchUsageError(f"bad options for job {job.name}: {exc}") from exc


def parse_option_pairs(pairs: list[str]) -> dict[str, str]:
    """``["size=64", "delay_s=0.5"]`` -> ``{"size": "64", "delay_s": "0.5"}``."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BatchUsageError(f"option {pair!r} is not KEY=VALUE")
        parsed[key.strip()] = value
    return parsed


def _convert(key: str, text: str, hint: object) -> object:
    """Convert the command-line string ``text`` to the field type ``hint``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args and type(None) in typing.get_args(hint):
        if text.strip().lower() in ("", "none", "null"):
            return None
        hint = args[0]
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"{text!r} is not a boolean")
            return lowered in ("1", "true", "yes", "on")
        if hint in (int, float, str, Path):
            return hint(text)
        if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...):
            return tuple(part.strip() for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise BatchUsageError(f"option {key}: {exc}") from exc
    raise BatchUsageError(f"option {key} of type {hint} cannot be given on the command line")


def options_fingerprint(job: Job, options: object, outputs_only: bool = True) -> str:
    """sha256 (16 hex) of the job name and its options: those that affect outputs, or all."""
    chosen = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
              if not outputs_only or f.metadata.get("affects_output", True)}
    plain = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in chosen.items()}
    text = json.dumps({"job": job.name, "options": plain}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

