"""Skin textures baked from synthetic photos whose truth is known: flat skin under coloured light,
a hand-like blob over the chin, a head turned away (seams)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.pipelines.commands.reconstruct import PhotoPipeline, ReconstructConfig
from facecast.recon.fit.skin_colour import ciede2000, seam_difference, srgb_to_lab
from facecast.recon.fit.texture import TextureConfig, texel_layout
from facecast.recon.learn.synthetic import SyntheticRenderer
from facecast.recon.model.albedo import region_weights
from facecast.render.interpolate import vertex_attributes_at
from facecast.render.shading import directional_light

SKIN = np.array([0.78, 0.58, 0.47])  # the synthetic head's albedo (sRGB-like renderer units)
SIZE = 512


@pytest.fixture(scope="module")
def scene(model):
    texture = np.empty((SIZE, SIZE, 3), np.uint8)
    texture[:] = np.round(SKIN * 255)
    return SyntheticRenderer(model, texture)


def _render(scene, yaw: float = 0.0, light: torch.Tensor | None = None) -> np.ndarray:
    rotation = torch.tensor([[0.05, float(np.radians(yaw)), 0.0]], dtype=torch.float32)
    with torch.no_grad():
        vertices = scene.model(torch.zeros(1, 100), torch.zeros(1, 53), rotation, scene.translation(1)).vertices
        light = directional_light(torch.tensor([[0.3, 0.4, 1.0]]), 0.5, 0.6) if light is None else light
        out = scene.renderer(vertices, scene.faces, scene.camera(1), scene.texture, light,
                             background=torch.tensor(scene.scene.background))
    return (out.image[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def pipeline(model):
    with PhotoPipeline(model, ReconstructConfig(texture=TextureConfig(size=SIZE))) as pipe:
        yield pipe


@pytest.fixture(scope="module")
def skin_texels(model):
    """Indices (row-major) of the texture's skin texels and their triangle-interpolated skin weight."""
    fg, tris = texel_layout(model, SIZE)
    weight = vertex_attributes_at(torch.as_tensor(region_weights(model.data)[:, :1], dtype=torch.float32)[None],
                                  tris, fg)[:, 0].numpy()
    return fg.pixel.numpy()[weight > 0.9]


def _lab_of(texture: np.ndarray, texels: np.ndarray) -> np.ndarray:
    return srgb_to_lab(texture.reshape(-1, 3)[texels] / 255.0)


def test_coloured_light_cannot_blow_the_skin_texture_up(scene, pipeline, skin_texels):
    # a strong green key light from the side, deep shadow on the other side of the face
    light = directional_light(torch.tensor([[-0.8, 0.5, 0.6]]), 1.0, 0.15) * torch.tensor([0.6, 1.0, 0.5])
    rec = pipeline.run(_render(scene, light=light))
    lab = _lab_of(rec.texture, skin_texels)
    lightness, chroma = lab[:, 0], np.hypot(lab[:, 1], lab[:, 2])
    # the true albedo is one flat colour: no bright or over-saturated patches, no black holes
    # (the unbounded division of before: 0.95 % brighter, 0.73 % over-saturated, 1st percentile 20 darker)
    assert (lightness > np.median(lightness) + 15).mean() < 0.005
    assert (chroma > 1.3 * np.median(chroma)).mean() < 0.002
    assert np.percentile(lightness, 1) > np.median(lightness) - 17


def test_a_blob_over_the_chin_is_not_baked(scene, pipeline, model, skin_texels):
    photo = _render(scene)
    rec = pipeline.run(photo)
    chin = rec.result.detected.points[152]
    hand = np.array([150, 95, 70], np.uint8)  # a darker, redder skin tone than the face's
    ys, xs = np.mgrid[:photo.shape[0], :photo.shape[1]]
    blob = np.hypot((xs - chin[0]) / 40.0, (ys - chin[1] + 12) / 22.0) < 1.0
    covered = photo.copy()
    covered[blob] = hand
    baked = pipeline.run(covered)
    # texels whose surface point the blob covered in the photo
    fg, tris = texel_layout(model, SIZE)
    c = baked.result.coeffs
    with torch.no_grad():
        vertices = model(c.identity, c.expression, c.rotation, c.translation).vertices
        position = vertex_attributes_at(vertices, tris, fg)
        pixels = scene.camera(1).project(position[None])[0].numpy() - 0.5
    inside = blob[pixels[:, 1].round().astype(int).clip(0, photo.shape[0] - 1),
                  pixels[:, 0].round().astype(int).clip(0, photo.shape[1] - 1)]
    texels = np.intersect1d(fg.pixel.numpy()[inside], skin_texels)
    assert len(texels) > 200
    lab = _lab_of(baked.texture, texels)
    face = np.median(_lab_of(rec.texture, skin_texels), 0)
    to_face, to_hand = ciede2000(lab, face), ciede2000(lab, srgb_to_lab(hand / 255.0))
    assert np.median(to_face) < np.median(to_hand)
    assert np.median(to_face) < 6.0


def test_a_turned_head_has_no_seam_where_the_photo_stops(scene, pipeline, model, skin_texels):
    photo = _render(scene, yaw=50.0)
    rec = pipeline.run(photo)
    baked = pipeline.baker.bake_layers(rec.result.coeffs, photo)
    seen = np.zeros(SIZE * SIZE, bool)
    unseen = np.zeros(SIZE * SIZE, bool)
    weight = baked.seen.reshape(-1)
    seen[skin_texels[weight[skin_texels] > 0.5]] = True
    unseen[skin_texels[weight[skin_texels] <= 0.5]] = True
    assert seen.sum() > 1000 and unseen.sum() > 1000  # half the face is turned away
    texture = baked.texture / 255.0
    assert seam_difference(texture, seen.reshape(SIZE, SIZE), unseen.reshape(SIZE, SIZE)) < 3.0
    # the back of the head takes this person's skin tone
    names = list(rec.mesh.material_names)
    back = np.array(rec.mesh.colour(names.index("M_BackHead"))[:3])
    skin = np.median(texture.reshape(-1, 3)[skin_texels], 0)
    assert ciede2000(srgb_to_lab(back), srgb_to_lab(skin)) < 3.0
