"""The background of a photo, as a pixel mask: MediaPipe's selfie segmentation (person vs the rest),
whose model ships in the mediapipe wheel and runs offline. The texture bake leaves the pixels it marks
out, so that a fit that overhangs the head's outline (profiles, the jaw over a dark collar) does not
paint the background onto the face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.recon.landmarks.detector import check_image
from facecast.recon.landmarks.mediapipe_mesh import SolutionGraph


@dataclass(frozen=True)
class SegmentationConfig:
    """Pixels whose person score is below ``background_below`` are background (a low bar: only what the
    model is sure of; hair and dim skin score in between). ``landscape``: the 144x256 model instead of
    the 256x256 one (faster, coarser)."""

    background_below: float = 0.2
    landscape: bool = False


class PersonSegmenter(SolutionGraph):
    """Finds the background of still photos; use as a context manager or call :meth:`close`."""

    def __init__(self, config: SegmentationConfig = SegmentationConfig()) -> None:
        super().__init__()
        self.config = config

    def _open(self):
        from mediapipe.python.solutions import selfie_segmentation

        return selfie_segmentation.SelfieSegmentation(model_selection=int(self.config.landscape))

    def score(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` float32 in [0, 1]: how surely each pixel of ``image`` ``(H, W, 3)`` uint8 RGB shows a person."""
        image = check_image(image)
        result = self._process(image)
        return np.asarray(result.segmentation_mask, np.float32)

    def background(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` bool: the pixels of ``image`` that show no person."""
        return self.score(image) < self.config.background_below
