"""MediaPipe selfie segmentation on real photos: the face and hair are the person, the studio
background is not; the texture bake of a profile takes no background from past the head's outline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facecast.pipelines.commands.reconstruct import PhotoPipeline, ReconstructConfig, load_photo
from facecast.recon.landmarks.person import PersonSegmenter


@pytest.fixture(scope="module")
def segmenter():
    with PersonSegmenter() as seg:
        yield seg


def test_the_astronaut_is_a_person_and_the_studio_is_not(segmenter, model):
    image, _ = load_photo(None)
    with PhotoPipeline(model, ReconstructConfig()) as pipeline:
        points = pipeline.run(image).result.detected.points
    score = segmenter.score(image)
    assert score.shape == image.shape[:2] and score.dtype == np.float32
    assert 0.0 <= score.min() and score.max() <= 1.0
    inside = np.round(points).astype(int)
    assert np.mean(score[inside[:, 1], inside[:, 0]] > 0.5) > 0.98  # the 478 face points: all on the person
    background = segmenter.background(image)
    assert background[:60, 420:].mean() > 0.95  # the top right corner: the rocket and the studio backdrop
    assert background[:60, :60].mean() > 0.95  # the top left: the flag
    assert background[inside[:, 1], inside[:, 0]].mean() < 0.01  # (points on the outline may fall outside)


def test_a_profile_bake_leaves_the_background_out(model, shared_dir):
    image = np.asarray(Image.open(shared_dir / "media/aflw2000/image00475.jpg").convert("RGB"))
    with PhotoPipeline(model, ReconstructConfig()) as pipeline:
        rec = pipeline.run(image)
        hidden = pipeline.hidden(image)
        assert hidden is not None and hidden.mean() > 0.3  # a dark room around a turned head
        layers = pipeline.baker.bake_layers(rec.result.coeffs, image, hidden)
        bare = pipeline.baker.bake_layers(rec.result.coeffs, image)
    # the dark background past the forehead's outline is in the bare bake only: texels much darker than the skin
    from facecast.recon.fit.skin_colour import srgb_to_lab

    def dark_share(texture: np.ndarray) -> float:
        lab = srgb_to_lab(texture.reshape(-1, 3) / 255.0)
        return float(np.mean(lab[:, 0] < 20.0))

    assert dark_share(bare.texture) > 0.002
    assert dark_share(layers.texture) < 0.25 * dark_share(bare.texture)
