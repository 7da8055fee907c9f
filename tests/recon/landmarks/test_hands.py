"""MediaPipe Hands on real photos: a hand under the chin and one on the neck are found and masked;
a photo without hands gives an empty mask; the texture bake takes nothing from the masked pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facecast.recon.landmarks.hands import HandDetector


def _photo(shared_dir, name: str) -> np.ndarray:
    return np.asarray(Image.open(shared_dir / "media/lfpw68-train" / name).convert("RGB"))


@pytest.fixture(scope="module")
def detector():
    with HandDetector() as hands:
        yield hands


@pytest.mark.parametrize("name", ["image_0035.jpg", "image_0034.jpg"])  # under the chin; on the neck
def test_a_hand_by_the_face_is_found_and_masked(detector, shared_dir, name):
    photo = _photo(shared_dir, name)
    hands = detector.landmarks(photo)
    assert len(hands) >= 1 and all(h.shape == (21, 2) for h in hands)
    mask = detector.mask(photo)
    assert mask.shape == photo.shape[:2]
    for points in hands:  # every landmark of every hand lies in the mask, and the mask is hand-sized
        inside = mask[points[:, 1].round().astype(int).clip(0, mask.shape[0] - 1),
                      points[:, 0].round().astype(int).clip(0, mask.shape[1] - 1)]
        assert inside.mean() > 0.9
    span = np.ptp(np.concatenate(hands), axis=0).prod()
    assert 0.3 * span < mask.sum() < 3.0 * span * len(hands)


def test_no_hand_no_mask(detector, shared_dir):
    assert not detector.mask(_photo(shared_dir, "image_0017.jpg")).any()  # a portrait, hands out of frame
