"""Reference images of the ICT head: rendering must not change unnoticed.

The PNGs in ``tests/data/render/`` were generated once with
``python tests/render/make_reference_images.py``; the scenes and settings are imported
from that script. If a change to the renderer is intended, regenerate them, look at
them, and commit them with the change.

Tolerance (uint8 levels): mean absolute difference <= 0.5 over all pixels and
channels, and at most 0.5 % of pixels differing by more than 16 in some channel (room
for a few silhouette pixels to flip between platforms or torch versions; a change in
camera, lighting, shading or interpolation moves far more).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("make_reference_images", HERE / "make_reference_images.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

MEAN_LEVELS = 0.5
FAR_LEVELS = 16
FAR_FRACTION = 0.005


@pytest.mark.parametrize("name", sorted(reference.SCENES))
def test_render_matches_reference_image(model, name):
    path = reference.OUTPUT / f"{name}.png"
    assert path.is_file(), f"missing {path}; run python tests/render/make_reference_images.py"
    expected = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    rendered = reference.render_scene(model, name).astype(np.int16)
    assert rendered.shape == expected.shape == (reference.SIZE, reference.SIZE, 3)
    diff = np.abs(rendered - expected)
    assert diff.mean() <= MEAN_LEVELS, f"{name}: mean difference {diff.mean():.3f} levels"
    far = float((diff.max(axis=-1) > FAR_LEVELS).mean())
    assert far <= FAR_FRACTION, f"{name}: {far:.2%} of pixels differ by more than {FAR_LEVELS} levels"


def test_reference_images_show_a_head():
    # Guards the stored PNGs themselves: a head on a dark background, not blank images.
    for name in reference.SCENES:
        image = np.asarray(Image.open(reference.OUTPUT / f"{name}.png").convert("RGB"))
        covered = image.sum(axis=-1) > 3 * 40
        assert 0.25 < covered.mean() < 0.9, name
