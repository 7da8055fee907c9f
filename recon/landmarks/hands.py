"""Hands in a photo, as pixel masks: MediaPipe Hands (palm detector + 21 landmarks), whose models
ship in the mediapipe wheel and run offline. The texture bake leaves the pixels they cover out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.recon.landmarks.detector import check_image
from facecast.recon.landmarks.mediapipe_mesh import SolutionGraph

#: landmarks of one finger each (MediaPipe's hand topology), from the knuckle to the tip
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
#: the palm's outline: wrist, thumb base and the four knuckles
PALM = (0, 1, 5, 9, 13, 17)


@dataclass(frozen=True)
class HandConfig:
    """At most ``max_hands`` hands with a detection score of at least ``min_confidence``; each finger
    drawn ``finger_width`` of the hand's size wide (the palm's diagonal)."""

    max_hands: int = 2
    min_confidence: float = 0.5
    finger_width: float = 0.28


class HandDetector(SolutionGraph):
    """Finds hands in still photos; use as a context manager or call :meth:`close` to free the graph."""

    def __init__(self, config: HandConfig = HandConfig()) -> None:
        super().__init__()
        self.config = config

    def _open(self):
        from mediapipe.python.solutions import hands

        return hands.Hands(static_image_mode=True, max_num_hands=self.config.max_hands, model_complexity=1,
                           min_detection_confidence=self.config.min_confidence)

    def landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """``(H, W, 3)`` uint8 RGB -> one ``(21, 2)`` float array of pixel positions per hand found."""
        image = check_image(image)
        height, width = image.shape[:2]
        result = self._process(image)
        return [np.array([[p.x * width, p.y * height] for p in hand.landmark], np.float64)
                for hand in (result.multi_hand_landmarks or [])]

    def mask(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` bool: the pixels of ``image`` ``(H, W, 3)`` that the hands found cover (palm
        polygon and fingers as thick lines, a little wider than the hand itself)."""
        import cv2

        out = np.zeros(image.shape[:2], np.uint8)
        for points in self.landmarks(image):
            size = float(np.linalg.norm(points[0] - points[9]))  # wrist to the middle finger's knuckle
            width = max(2, round(self.config.finger_width * size))
            cv2.fillConvexPoly(out, cv2.convexHull(np.round(points[list(PALM)]).astype(np.int32)), 1)
            cv2.polylines(out, [np.round(points[list(PALM)]).astype(np.int32)], True, 1, width)
            for finger in FINGERS:
                chain = np.round(points[[0 if finger[0] == 1 else finger[0], *finger]]).astype(np.int32)
                cv2.polylines(out, [chain], False, 1, width)
        return out.astype(bool)
