"""Pseudo-labels: real detections with coefficients fitted to them, for self-supervised fine-tuning.

Synthetic faces teach the regressor the model; real photos and frames teach it the
detector: MediaPipe's points on real faces are noisier, and placed differently, than the
projected mesh points of :mod:`facecast.recon.learn.train_data`. A :class:`PseudoLabels` set holds,
for each real face, MediaPipe's 478 points and the coefficients the fitter
(:class:`~facecast.recon.photo.PhotoReconstructor`, refine or accurate) found for them; a
training run (``TrainConfig.pseudo_labels``) mixes them into its batches as if they were
truth. Stored as one ``.npz`` (written atomically) with the sources named per face.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecast.recon.landmarks.detector import faces_from_points
from facecast.recon.learn.inputs import N_LANDMARKS, prepare_inputs
from facecast.recon.learn.train_data import TrainBatch
from facecast.recon.model.albedo import DEFAULT_COLOURS
from facecast.recon.model.coeffs import FaceCoeffs

FORMAT = "facecast-pseudo-labels-1"
ARRAYS = ("points", "image_size", "identity", "expression", "rotation", "translation")


@dataclass
class PseudoLabels:
    """B real faces: points ``(B, 478, 2)`` detector pixels (integer-centre convention),
    image_size ``(B, 2)`` (H, W), fitted identity ``(B, 100)``, expression ``(B, 53)``,
    rotation ``(B, 3)`` axis-angle, translation ``(B, 3)`` cm (the fitter's default camera),
    and ``sources`` (B names: file, or ``file:frame``)."""

    points: np.ndarray
    image_size: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    sources: list[str]

    def __post_init__(self) -> None:
        b = len(self.sources)
        shapes = {"points": (b, N_LANDMARKS, 2), "image_size": (b, 2), "identity": (b, 100),
                  "expression": (b, 53), "rotation": (b, 3), "translation": (b, 3)}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if tuple(value.shape) != shape:
                raise ValueError(f"pseudo-labels {name} must have shape {shape}, got {tuple(value.shape)}")
            if not np.isfinite(value).all():
                raise ValueError(f"pseudo-labels {name} has non-finite values")

    def __len__(self) -> int:
        return len(self.sources)

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz) through a temporary file: never half-written."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp.npz")
        try:
            np.savez(temporary, format=FORMAT, sources=np.array(self.sources, dtype=str),
                     **{name: getattr(self, name) for name in ARRAYS})
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PseudoLabels:
        """Read :meth:`save` output; ``ValueError`` naming the file when it is not one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path} is not a readable pseudo-label file ({exc})") from None
        if str(contents.get("format", "")) != FORMAT:
            raise ValueError(f"{path} is not a facecast pseudo-label file")
        missing = [k for k in (*ARRAYS, "sources") if k not in contents]
        if missing:
            raise ValueError(f"{path} lacks {missing}")
        arrays = {k: contents[k].astype(np.int64 if k == "image_size" else np.float64) for k in ARRAYS}
        return cls(**arrays, sources=[str(s) for s in contents["sources"]])

    def training_batch(self, crop_size: int, crop_scale: float, focal_factor: float) -> TrainBatch:
        """All faces as a landmark-only :class:`TrainBatch` (fitted coefficients as the truth)."""
        from facecast.recon.model.coeffs import PIXEL_OFFSET
        from facecast.render.shading import ambient_light

        count = len(self)
        inputs = prepare_inputs(faces_from_points(self.points), None, crop_size, crop_scale, with_crops=False,
                                sizes=[tuple(int(v) for v in s) for s in self.image_size])
        focal, principal = inputs.frame.camera(focal_factor)
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        albedo = torch.as_tensor(DEFAULT_COLOURS, dtype=torch.float32)[None].expand(count, -1, -1).clone()
        truth = FaceCoeffs(as_t(self.identity), as_t(self.expression).clamp(0, 1), as_t(self.rotation),
                           as_t(self.translation), focal, principal, ambient_light(count), albedo)
        return TrainBatch(truth, inputs, as_t(self.points) + PIXEL_OFFSET)


def label_faces(reconstructor, faces: list, sizes: list[tuple[int, int]], sources: list[str]) -> PseudoLabels:
    """Fit detected MediaPipe faces (one per image, ``sizes`` (H, W)) with ``reconstructor``
    (a :class:`~facecast.recon.photo.PhotoReconstructor`) and keep the fits as pseudo-labels."""
    if not (len(faces) == len(sizes) == len(sources)) or not faces:
        raise ValueError(f"need one size and source per face and at least one face, got "
                         f"{len(faces)} faces, {len(sizes)} sizes, {len(sources)} sources")
    coeffs = FaceCoeffs.cat([r.coeffs for r in reconstructor.fit(faces, sizes)])
    arrays = {name: getattr(coeffs, name).double().numpy() for name in ARRAYS[2:]}
    return PseudoLabels(np.stack([f.points for f in faces]).astype(np.float64), np.array(sizes, dtype=np.int64),
                        **arrays, sources=list(sources))


def concatenate(parts: list[PseudoLabels]) -> PseudoLabels:
    """One set from several (in order)."""
    if not parts:
        raise ValueError("no pseudo-labels to concatenate")
    return PseudoLabels(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in ARRAYS},
                        sources=[s for p in parts for s in p.sources])


def describe(labels: PseudoLabels) -> str:
    """``"N faces from K sources (a.mp4: 60, b.jpg: 1, ...)"``, the sources by file name."""
    from collections import Counter

    def file_of(source: str) -> str:  # "clip.mp4:120" -> "clip.mp4"
        name, _, frame = source.rpartition(":")
        return name if name and frame.isdigit() else source

    counts = Counter(file_of(s) for s in labels.sources)
    listed = ", ".join(f"{Path(name).name}: {n}" for name, n in counts.most_common(8))
    more = f", and {len(counts) - 8} more" if len(counts) > 8 else ""
    return f"{len(labels)} faces from {len(counts)} sources ({listed}{more})"
