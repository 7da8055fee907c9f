"""Synthetic renders: the texture atlas and eyes that MediaPipe needs to see."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.recon.learn.synthetic import (
    ATLAS_CELL,
    EYE_MATERIALS,
    FLAT_COLOURS,
    PUPIL_RADIUS,
    SyntheticRenderer,
    texture_atlas,
)
from facecast.recon.model.coeffs import N_EXPRESSION, N_IDENTITY
from facecast.recon.model.topology import triangulate

SKIN = 150  # flat grey skin texture value (0-255)


@pytest.fixture(scope="module")
def grey_texture() -> np.ndarray:
    return np.full((512, 512, 3), SKIN, dtype=np.uint8)


def test_atlas_holds_head_eyes_mouth_and_lashes(ict_data, grey_texture):
    faces, image, corners = texture_atlas(ict_data, grey_texture)
    head = triangulate(ict_data.face_vertices[ict_data.region_face_mask(("head",))])
    extra = sum(len(triangulate(ict_data.face_vertices[ict_data.face_material == ict_data.material_names.index(m)]))
                for m in (*EYE_MATERIALS, *FLAT_COLOURS))
    assert faces.shape == (len(head) + extra, 3) and corners.shape == (len(faces), 3, 2)
    assert image.shape == (1, 3, 512, 512 + ATLAS_CELL)
    assert float(corners.min()) >= 0.0 and float(corners.max()) <= 1.0
    # the photo part is the texture unchanged; each flat colour fills its own cell
    np.testing.assert_allclose(image[0, :, :, :512].numpy(), SKIN / 255.0, atol=1e-6)
    for row, colour in enumerate(FLAT_COLOURS.values(), start=1):
        cell = image[0, :, row * ATLAS_CELL + 10, 512 + ATLAS_CELL // 2].numpy()
        np.testing.assert_allclose(cell, colour, atol=1e-6)


def test_atlas_rejects_a_texture_too_small_for_its_cells(ict_data):
    with pytest.raises(ValueError, match="too small"):
        texture_atlas(ict_data, np.zeros((256, 256, 3), dtype=np.uint8))


def test_render_shows_dark_pupils_inside_the_eye_openings(model, grey_texture):
    """A frontal neutral face: the pupil centres are dark, the cheeks are skin."""
    data = model.data
    renderer = SyntheticRenderer(model, grey_texture)
    zeros = torch.zeros(1, 3)
    image = renderer.render(torch.zeros(1, N_IDENTITY), torch.zeros(1, N_EXPRESSION), zeros,
                            light_direction=torch.tensor([[0.0, 0.0, 1.0]]))[0].astype(float)
    camera = renderer.camera(1)
    translation = renderer.translation(1)
    for name in EYE_MATERIALS:
        faces = data.face_vertices[data.face_material == data.material_names.index(name)]
        ball = data.neutral[np.unique(faces[faces >= 0])]
        centre = (ball.max(0) + ball.min(0)) / 2
        front = np.array([centre[0], centre[1], ball[:, 2].max()])  # the pupil faces +z (the camera)
        pixel = camera.project(torch.as_tensor(front, dtype=torch.float32)[None, None] + translation[:, None])[0, 0]
        x, y = (int(v) for v in pixel)
        pupil = np.median(image[y - 2:y + 3, x - 2:x + 3].mean(-1))  # median: ignore the specular glint
        assert pupil < 0.3 * SKIN, f"{name}: pupil pixel value {pupil:.0f} is not dark"
        radius = (ball.max(0) - ball.min(0))[0] / 2
        assert PUPIL_RADIUS * radius > 0.1  # cm: a pupil several pixels wide at this distance
    lightest = np.percentile(image.mean(-1), 90)
    assert lightest > 0.5 * SKIN  # skin renders lit, not black
