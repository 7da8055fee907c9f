"""Causal smoothing of per-frame coefficients for the regressor's ``fast`` tracking mode.

The fitter's modes tie frames together with a temporal term; ``fast`` predicts each
frame on its own, so its pose and expressions carry the detector's frame-to-frame
noise. A One Euro filter per group (rotation in radians, translation in cm,
expression weights) removes most of it at rest and follows fast motion with little
lag (the cutoff rises with the speed). It is causal, so it works frame by frame on
streams; held gaps pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from facecast.recon.fit.tracking import TrackedFrame
from facecast.transfer.filters import OneEuroConfig, OneEuroFilter


@dataclass(frozen=True)
class FastSmoothing:
    """One Euro settings per coefficient group (see :class:`OneEuroConfig`)."""

    rotation: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=1.0, beta=2.0))
    translation: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=1.0, beta=0.1))
    expression: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=2.0, beta=2.0))


def smooth_tracked(frames: Iterable[TrackedFrame], config: FastSmoothing = FastSmoothing()
                   ) -> Iterator[TrackedFrame]:
    """Filter rotation ``(1, 3)``, translation ``(1, 3)`` and expression ``(1, 53)`` of each detected frame."""
    filters = {name: OneEuroFilter(getattr(config, name)) for name in ("rotation", "translation", "expression")}
    for frame in frames:
        if not frame.detected:
            yield frame
            continue
        coeffs = frame.coeffs
        smoothed = {name: filt(frame.time, getattr(coeffs, name)[0])[None] for name, filt in filters.items()}
        smoothed["expression"] = smoothed["expression"].clamp(0.0, 1.0)
        yield replace(frame, coeffs=replace(coeffs, **smoothed))
