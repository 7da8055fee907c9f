"""The 52 exact ARKit targets of facecast's own GLB (issue #16): browInnerUp and cheekPuff as the sum of
the ICT halves, a tongueOut made from the ICT tongue that comes out of the mouth and moves nothing else,
and animations whose keyframes follow the targets."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.pipelines.export.arkit_morphs import arkit_weights, tongue_out, with_arkit_names
from facecast.pipelines.export.avatar import build_avatar, random_identity
from facecast.recon.model.arkit import ARKIT_52
from facecast.recon.model.topology import REGION_STARTS

TONGUE = ARKIT_52.index("tongueOut")


@pytest.fixture(scope="module")
def avatar(model):
    return build_avatar(model, random_identity(seed=4))


@pytest.fixture(scope="module")
def arkit(avatar):
    return with_arkit_names(avatar)


def _region(mesh, name: str) -> np.ndarray:
    ids = mesh.source_vertex_ids
    starts = list(REGION_STARTS.values()) + [26719]
    k = list(REGION_STARTS).index(name)
    return (ids >= starts[k]) & (ids < starts[k + 1])


def test_names_and_split_shapes(avatar, arkit):
    assert arkit.morph_names == ARKIT_52 and arkit.morph_deltas.shape == (52, avatar.n_vertices, 3)
    ict = dict(zip(avatar.morph_names, avatar.morph_deltas))
    for k, name in enumerate(ARKIT_52):
        if name in ict:
            np.testing.assert_array_equal(arkit.morph_deltas[k], ict[name])
        elif name != "tongueOut":
            np.testing.assert_allclose(arkit.morph_deltas[k], ict[name + "Left"] + ict[name + "Right"], atol=1e-6)
    assert with_arkit_names(arkit) is arkit  # already ARKit: unchanged


def test_tongue_out_comes_out_of_the_mouth_and_moves_only_the_tongue(arkit):
    delta = arkit.morph_deltas[TONGUE]
    moving = np.linalg.norm(delta, axis=1) > 1e-6
    assert moving.sum() > 200 and np.all(_region(arkit, "gums_tongue")[moving])  # the tongue part alone
    assert delta[:, 2].max() == pytest.approx(3.2, abs=0.01)  # cm forward at the front
    # with the jaw half open, the tip passes the lower lip (the skin near the midline that the jaw carries,
    # above the chin): further forward than any of it; without tongueOut the tongue is behind it
    jaw = arkit.morph_deltas[ARKIT_52.index("jawOpen")]
    open_mouth = arkit.vertices + 0.5 * jaw
    lip = (_region(arkit, "face") & (np.abs(arkit.vertices[:, 0]) < 1.0) & (np.linalg.norm(jaw, axis=1) > 1.0)
           & (arkit.vertices[:, 1] > arkit.vertices[moving, 1].max() - 3.0))
    front_of_lip = open_mouth[lip, 2].max()
    assert (open_mouth + delta)[moving, 2].max() > front_of_lip + 0.5, "the tongue stays behind the lips"
    assert open_mouth[moving, 2].max() < front_of_lip - 0.5


def test_a_face_only_avatar_has_a_still_tongue_out(model):
    face = build_avatar(model, np.zeros(100), ["face"])
    assert not tongue_out(face).any()
    assert with_arkit_names(face).morph_names == ARKIT_52


def test_keyframes_follow_the_targets(avatar):
    weights = np.zeros((3, len(avatar.morph_names)))
    names = list(avatar.morph_names)
    weights[:, names.index("browInnerUpLeft")] = [0.0, 0.6, 1.0]
    weights[:, names.index("browInnerUpRight")] = [0.0, 0.2, 1.0]
    weights[:, names.index("jawOpen")] = 0.7
    out = arkit_weights(weights, avatar.morph_names)
    assert out.shape == (3, 52)
    np.testing.assert_allclose(out[:, ARKIT_52.index("browInnerUp")], [0.0, 0.4, 1.0])
    np.testing.assert_allclose(out[:, ARKIT_52.index("jawOpen")], 0.7)
    assert np.all(out[:, TONGUE] == 0)  # the tracker does not estimate the tongue
    # a symmetric pose is the same surface either way
    symmetric = weights.copy()
    symmetric[:, names.index("browInnerUpRight")] = symmetric[:, names.index("browInnerUpLeft")]
    arkit = with_arkit_names(avatar)
    np.testing.assert_allclose(np.tensordot(arkit_weights(symmetric, avatar.morph_names), arkit.morph_deltas, 1),
                               np.tensordot(symmetric, avatar.morph_deltas, 1), atol=1e-5)
    with pytest.raises(ValueError, match=r"weights must have shape \(T, 53\)"):
        arkit_weights(np.zeros((3, 52)), avatar.morph_names)
