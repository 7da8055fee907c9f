"""``facecast label``: real photos and videos -> pseudo-labels for fine-tuning the regressor.

Every photo and every ``every``-th frame of every video is searched for faces; the
largest one is fitted (``refine`` by default: regressor + Levenberg-Marquardt) and its
MediaPipe points with the fitted coefficients are kept
(:class:`facecast.recon.learn.pseudo_labels.PseudoLabels`). Files that cannot be read and frames
without a face are skipped and counted, not fatal; the labels file is written atomically
at the end, and only when at least one face was labelled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.pipelines.errors import UserError
from facecast.pipelines.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

FIT_CHUNK = 64  # faces fitted per batch


@dataclass
class LabelSummary:
    """What a labelling run did: faces kept, frames without a face, files skipped (with why)."""

    output: Path
    faces: int
    no_face: int
    skipped: dict[str, str] = field(default_factory=dict)


def media_frames(path: Path, every: int, max_frames: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """``(source name, RGB frame)`` of a photo, or of every ``every``-th frame of a video."""
    from facecast.pipelines.media import iter_frames, read_image

    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        yield str(path), read_image(path)
    elif suffix in VIDEO_SUFFIXES:
        for frame in iter_frames(path, max_frames):
            if frame.index % every == 0:
                yield f"{path}:{frame.index}", frame.rgb
    else:
        raise UserError(f"{path} is neither a photo ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                        f"nor a video ({', '.join(sorted(VIDEO_SUFFIXES))})")


def label_media(inputs: list[Path], output: Path, mode: str = "refine", every: int = 5,
                max_frames: int | None = None, assets: Path | None = None,
                log: Callable[[str], None] = print) -> LabelSummary:
    """Label the faces of ``inputs`` (photos and videos) and write ``output`` (.npz)."""
    from facecast.pipelines.commands.train import check_output_file
    from facecast.pipelines.errors import is_user_error
    from facecast.recon.landmarks.detector import sort_faces
    from facecast.recon.learn.pseudo_labels import concatenate, describe, label_faces
    from facecast.recon.model.morphable import MorphableModel
    from facecast.recon.photo import PhotoConfig, PhotoReconstructor

    if mode not in ("refine", "accurate"):
        raise UserError(f"--mode must be refine or accurate (pseudo-labels come from a fit), got {mode!r}")
    if every < 1:
        raise UserError(f"--every must be >= 1, got {every}")
    if not inputs:
        raise UserError("no inputs: give photos and/or videos")
    check_output_file(output, ".npz", "pseudo-labels")
    fitter = PhotoReconstructor(MorphableModel.load(assets), config=PhotoConfig(mode=mode))
    summary, parts, pending = LabelSummary(output, 0, 0), [], []

    def flush() -> None:
        if pending:
            faces, sizes, sources = zip(*pending)
            parts.append(label_faces(fitter, list(faces), list(sizes), list(sources)))
            summary.faces += len(pending)
            pending.clear()

    for path in inputs:
        try:
            for source, image in media_frames(Path(path), every, max_frames):
                found = fitter.detector.detect(image)
                if not found:
                    summary.no_face += 1
                    continue
                pending.append((sort_faces(found)[0], image.shape[:2], source))
                if len(pending) >= FIT_CHUNK:
                    flush()
        except Exception as exc:  # one unreadable input must not lose the others
            if not is_user_error(exc):
                raise
            summary.skipped[str(path)] = str(exc)
            log(f"skipped {path}: {exc}")
        else:
            log(f"{path}: {summary.faces + len(pending)} faces so far")
    flush()
    if not parts:
        raise UserError(f"no face found in any input ({summary.no_face} frames without a face, "
                        f"{len(summary.skipped)} inputs skipped); nothing written")
    labels = concatenate(parts)
    labels.save(output)
    log(f"wrote {output}: {describe(labels)}")
    return summary
