"""Previews: the line overlay of video frames draws MediaPipe's mesh through the model's own points."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from facecast.pipelines.overlay import LineOverlay


@pytest.fixture(scope="module")
def fitted(model):
    from facecast.recon.photo import PhotoConfig, PhotoReconstructor

    image = np.ascontiguousarray(data.astronaut())
    with PhotoReconstructor(model, config=PhotoConfig(mode="refine")) as photo:
        return image, photo.reconstruct(image, "astronaut")


def test_lines_are_drawn_on_the_face_and_nowhere_else(fitted):
    image, result = fitted
    picture = LineOverlay(colour=(0, 255, 0), opacity=1.0).draw(result.landmarks478, image)
    changed = np.abs(picture.astype(int) - image.astype(int)).sum(-1) > 30
    x0, y0 = result.landmarks478.min(0) - 3
    x1, y1 = result.landmarks478.max(0) + 3
    inside = np.zeros_like(changed)
    inside[int(y0):int(y1) + 1, int(x0):int(x1) + 1] = True
    assert changed[inside].mean() > 0.2  # a mesh over the face
    assert not changed[~inside].any()  # nothing beyond the model's points
    assert (picture[changed][:, 1] > picture[changed][:, 0]).mean() > 0.9  # the chosen colour


def test_scaled_preview_and_bad_points(fitted):
    image, result = fitted
    small = image[::2, ::2].copy()
    picture = LineOverlay().draw(result.landmarks478, small, result.landmarks68, scale=0.5)
    assert picture.shape == small.shape and not np.array_equal(picture, small)
    with pytest.raises(ValueError, match="points478 must have shape"):
        LineOverlay().draw(result.landmarks478[:68], image)
