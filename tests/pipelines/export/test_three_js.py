"""three.js (GLTFLoader in headless Chromium) plays facecast's animated ICT avatar GLB: it finds the 52
ARKit targets, the jawOpen and browInnerUp (the ICT halves' mean) influences and the head yaw it sees are
the ones written, and the head renders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from three_tools import view_in_three

from facecast.pipelines.export.avatar import build_avatar, random_identity
from facecast.pipelines.export.gltf import GltfOptions
from facecast.pipelines.export.gltf_animation import animated_avatar_glb
from facecast.recon.model.arkit import ARKIT_52
from facecast.transfer.retarget import RetargetConfig, retarget
from facecast.transfer.rigs import IctRig, channel_names

FPS = 30.0
FRAMES = 16
YAW = 0.4   # radians of head turn over the clip
BACKGROUND = (30, 42, 56)
LOOK_AT = Path("/tmp/three_avatar.png")
BROWS = [channel_names().index(n) for n in ("browInnerUpLeft", "browInnerUpRight")]


@pytest.fixture(scope="module")
def clip(model):
    """The avatar's animation: jawOpen 0 -> 1, the brows' inner halves up from frame 1 on (0.6 left, 0.4
    right) and a yaw 0 -> YAW, unsmoothed."""
    names = list(model.expression_names)
    jaw = names.index("jawOpen")
    weights = np.zeros((FRAMES, len(names)))
    weights[:, jaw] = np.linspace(0.0, 1.0, FRAMES)
    weights[1:, names.index("browInnerUpLeft")], weights[1:, names.index("browInnerUpRight")] = 0.6, 0.4
    rotation = np.zeros((FRAMES, 3))
    rotation[:, 1] = np.linspace(0.0, YAW, FRAMES)
    rig = IctRig(random_identity(seed=5))
    config = RetargetConfig(neutral="none", smoothing="none", rescale=False)
    return rig, retarget(weights, rotation, None, FPS, rig, config), jaw


@pytest.fixture(scope="module")
def avatar(model, clip):
    return build_avatar(model, clip[0].identity)


@pytest.fixture(scope="module")
def view(avatar, clip, tmp_path_factory):
    _, animation, _ = clip
    folder = tmp_path_factory.mktemp("three")
    path = folder / "avatar.glb"
    path.write_bytes(animated_avatar_glb(avatar, animation, GltfOptions(min_delta=1e-5)))
    end = float(np.float32(animation.times[-1]))
    return view_in_three(path, [0.0, end / 2, end], screenshot=folder / "avatar.png", node_names=["avatar"],
                         background="#{:02x}{:02x}{:02x}".format(*BACKGROUND))


def _angle(rotation: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0)))


def test_three_finds_the_clip_and_a_head_sized_avatar(view, clip, avatar):
    _, animation, _ = clip
    assert view.animations == ("facecast",)
    np.testing.assert_allclose(view.durations, [animation.times[-1]], atol=1e-6)
    assert view.n_meshes >= 5 and view.n_vertices > 10_000     # one three.js mesh per ICT material
    rest = np.stack([avatar.vertices.min(axis=0), avatar.vertices.max(axis=0)]) / 100
    np.testing.assert_allclose(view.bounds, rest, atol=1e-5)    # metres, where the cm mesh is
    extent = view.bounds[1] - view.bounds[0]
    assert 0.2 < extent.min() and extent.max() < 0.4, extent   # a head (and neck) in metres
    np.testing.assert_allclose(view.boxes[0], view.bounds, atol=1e-6)   # t = 0 is the rest pose
    assert all(names == ARKIT_52 for names in view.target_names.values()) and view.target_names


def test_jaw_open_and_brow_influences_follow_the_written_weights(view, clip):
    _, animation, jaw = clip
    written = animation.morphs[0].weights[:, jaw]
    assert written[0] == pytest.approx(0.0, abs=1e-6) and written[-1] == pytest.approx(1.0, abs=1e-6)
    expected = np.interp(view.times, animation.times, written)
    influences = view.influence("jawOpen")
    assert len(influences) == len(view.target_names)          # every primitive has the target
    for mesh, values in influences.items():
        np.testing.assert_allclose(values, expected, atol=1e-3, err_msg=mesh)
        brow = np.interp(view.times, animation.times, animation.morphs[0].weights[:, BROWS].mean(axis=1))
        assert brow[-1] == pytest.approx(0.5)  # the halves' mean: 0.6 and 0.4
        np.testing.assert_allclose(view.influence("browInnerUp")[mesh], brow, atol=1e-3)
    driven = [ARKIT_52.index("jawOpen"), ARKIT_52.index("browInnerUp")]
    others = [np.delete(view.influences[m], driven, axis=1) for m in influences]
    assert max(np.abs(o).max() for o in others) < 1e-6          # nothing else moves


def test_head_node_turns_by_the_written_angle(view, clip):
    _, animation, _ = clip
    q0, q1 = animation.rotation[0], animation.rotation[-1]
    written = 2 * np.arccos(min(abs(float(q0 @ q1)), 1.0))
    assert written == pytest.approx(YAW, abs=1e-3)
    start, middle, end = view.matrices["avatar"][:, :3, :3]
    turn = end @ start.T
    assert _angle(turn) == pytest.approx(written, abs=1e-4)
    assert _angle(middle @ start.T) == pytest.approx(written / 2, abs=1e-3)
    axis = np.array([turn[2, 1] - turn[1, 2], turn[0, 2] - turn[2, 0], turn[1, 0] - turn[0, 1]])
    assert abs(axis[1]) / np.linalg.norm(axis) > 0.999              # a yaw: about +-y


def test_the_avatar_renders(view):
    if not view.rendered:
        pytest.skip(f"three.js could not render under this Chromium's WebGL: {view.render_error}")
    assert view.screenshot is not None
    shutil.copy(view.screenshot, LOOK_AT)
    pixels = np.asarray(Image.open(view.screenshot).convert("RGB")).astype(int)
    differs = np.abs(pixels - BACKGROUND).sum(axis=2) > 12
    assert 0.05 < differs.mean() < 0.9, differs.mean()              # a head in front of the background
    assert len(np.unique(pixels[differs], axis=0)) > 50            # shaded, not one flat colour


def test_page_errors_are_raised_with_three_js_message(tmp_path):
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"glTF" + bytes(40))
    with pytest.raises(RuntimeError, match="three.js failed on .*broken.glb.*GLTFLoader"):
        view_in_three(broken, [0.0])
