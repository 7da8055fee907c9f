"""A face-capture app's GLB (issue #16): the head mesh in a parent turned 90 degrees, its node's origin at the
floor far below the head, eyes and teeth as separate meshes beside it; plain, and compressed by gltf-transform
(meshopt with quantisation, and Draco). Driving it turns the head about a neck pivot and the eyes and teeth
with it; the output is decoded, and gltf-validator and Blender read it."""

from __future__ import annotations

import numpy as np
import pytest
from capture_head import FPS, HEAD_CENTRE, PARTS, TURNED, capture_driver, capture_glb
from gltf_tools import compress_glb, mesh_centre, read_values, run_blender, validate, world_matrices
from scipy.spatial.transform import Rotation

from facecast.pipelines.export.gltf_animation import animate_glb
from facecast.pipelines.export.gltf_compression import compression_of
from facecast.recon.model.arkit import ARKIT_52
from facecast.transfer.glb import read_glb
from facecast.transfer.gltf_rig import GltfRig
from facecast.transfer.retarget import RetargetConfig, retarget
from facecast.transfer.rigs import channel_names, read_document


def _world(pose_rotation, pose_translation) -> np.ndarray:
    """World matrix of a child of the turned parent with this local rotation (xyzw) and translation."""
    local = np.eye(4)
    local[:3, :3], local[:3, 3] = Rotation.from_quat(pose_rotation).as_matrix(), pose_translation
    parent = np.eye(4)
    parent[:3, :3] = TURNED.as_matrix()
    return parent @ local


@pytest.fixture(scope="module", params=("plain", "meshopt", "draco"))
def driven(request, tmp_path_factory):
    """``(variant, input bytes, driven GLB bytes)``: the capture file as it comes, driven by the turn with
    the jaw opening from 0 to 0.8 (keyframe 0 to the last)."""
    data = capture_glb()
    if request.param != "plain":
        data = compress_glb(data, request.param, tmp_path_factory.mktemp(request.param))
    rig = GltfRig.from_document(read_document(data, "capture.glb"), "capture.glb")
    weights, rotation = capture_driver()
    weights[:, channel_names().index("jawOpen")] = np.linspace(0.0, 0.8, len(weights))
    animation = retarget(weights, rotation, None, FPS, rig, RetargetConfig(neutral="none", smoothing="none"))
    return request.param, data, animate_glb(data, animation)


def test_compressed_capture_files_drive_like_the_plain_one(driven):
    """Read back from the written file: the head turns 20 degrees of yaw and 15 of pitch, every frame's eye and
    teeth centres stay within 1 mm of where the head's motion takes them, the jaw opens; nothing compressed."""
    variant, original, data = driven
    assert compression_of(read_document(original, variant)) == {
        "plain": (), "meshopt": ("EXT_meshopt_compression",), "draco": ("KHR_draco_mesh_compression",)}[variant]
    chunks = read_glb(data)
    document = chunks.document
    assert compression_of(document) == ()
    frames = len(read_values(document, chunks.binary, document["animations"][0]["samplers"][0]["input"]))
    worlds = [world_matrices(document, chunks.binary, k) for k in range(frames)]

    def rotation(matrix: np.ndarray) -> np.ndarray:
        return matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)

    turn = rotation(worlds[-1]["HeadMesh"]) @ rotation(worlds[0]["HeadMesh"]).T
    yaw, pitch, _ = Rotation.from_matrix(turn).as_euler("YXZ", degrees=True)
    assert yaw == pytest.approx(20.0, abs=1.0) and pitch == pytest.approx(15.0, abs=1.0)
    worst = 0.0
    for world in worlds:
        moved = world["HeadMesh"] @ np.linalg.inv(worlds[0]["HeadMesh"])
        for name in PARTS:
            centre = mesh_centre(document, name)
            worst = max(worst, np.linalg.norm((world[name] @ centre)[:3] - (moved @ worlds[0][name] @ centre)[:3]))
    assert worst < 1e-3  # metres
    head = next(k for k, n in enumerate(document["nodes"]) if n["name"] == "HeadMesh")
    weights = next(c for c in document["animations"][0]["channels"] if c["target"] == {"node": head, "path": "weights"})
    values = read_values(document, chunks.binary, document["animations"][0]["samplers"][weights["sampler"]]["output"])
    jaw = values.reshape(frames, -1)[:, ARKIT_52.index("jawOpen")]
    assert jaw[0] == pytest.approx(0.0, abs=1e-6) and jaw[-1] == pytest.approx(0.8, abs=1e-3)


@pytest.fixture(scope="module")
def animated():
    data = capture_glb()
    rig = GltfRig.from_document(read_document(data, "capture.glb"), "capture.glb")
    weights, rotation = capture_driver()
    animation = retarget(weights, rotation, None, FPS, rig, RetargetConfig(neutral="none", smoothing="none"))
    return rig, animation, animate_glb(data, animation)


def test_the_head_turns_about_a_neck_pivot_with_its_eyes_and_teeth(animated):
    rig, animation, _ = animated
    assert rig.head_node == 1 and sorted(n for n, _ in rig.companions) == [2, 3, 4]
    head = [_world(animation.rotation[k], animation.translation[k]) for k in (0, -1)]
    turn = head[1][:3, :3] @ head[0][:3, :3].T
    yaw, pitch, _ = Rotation.from_matrix(turn).as_euler("YXZ", degrees=True)
    assert yaw == pytest.approx(20.0, abs=1.0) and pitch == pytest.approx(15.0, abs=1.0)
    # the head's centre swings about the neck (the bottom of the head), not about the node's origin 1.6 m below
    centre = [(m @ np.append(HEAD_CENTRE, 1.0))[:3] for m in head]
    assert np.linalg.norm(centre[1] - centre[0]) < 0.04
    moved = head[1] @ np.linalg.inv(head[0])  # the head's rigid motion in world space
    for node, rotation, translation in animation.companions:
        part = [_world(rotation[k], translation[k]) for k in (0, -1)]
        socket = (moved @ part[0][:, 3])[:3]  # where the eye / teeth centre must be to stay in place
        assert np.linalg.norm(part[1][:3, 3] - socket) < 1e-3, node  # within 1 mm
        np.testing.assert_allclose(part[1][:3, :3] @ part[0][:3, :3].T, turn, atol=1e-9)


def test_validator_and_blender_read_the_driven_capture_file(driven, tmp_path):
    variant, _, data = driven
    path = tmp_path / f"capture_{variant}_driven.glb"
    path.write_bytes(data)
    assert validate([path])[0]["numErrors"] == 0
    script = """
import bpy, json, sys
path = sys.argv[sys.argv.index("--") + 1]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
scene = bpy.context.scene
out = {"actions": len(bpy.data.actions), "frames": {}}
for frame in (0, 11):
    scene.frame_set(frame)
    out["frames"][frame] = {o.name: [list(r) for r in o.matrix_world] for o in scene.objects if o.type == "MESH"}
print("FACECAST_RESULT " + json.dumps(out))
"""
    result = run_blender(script, [str(path)])
    assert result["actions"] >= 1
    first, last = ({k: np.array(v) for k, v in result["frames"][f].items()} for f in ("0", "11"))
    turn = last["HeadMesh"][:3, :3] @ first["HeadMesh"][:3, :3].T  # Blender is z-up: yaw is about z
    assert np.degrees(np.arccos(np.clip((np.trace(turn) - 1) / 2, -1, 1))) > 20.0  # yaw and pitch together
    heading = turn @ np.array([0.0, -1.0, 0.0])  # Blender's forward (-y) after the turn
    assert np.degrees(np.arctan2(heading[0], -heading[1])) == pytest.approx(20.0, abs=1.0)  # towards +x
    moved = last["HeadMesh"] @ np.linalg.inv(first["HeadMesh"])
    for name in PARTS:
        socket = (moved @ first[name][:, 3])[:3]
        assert np.linalg.norm(last[name][:3, 3] - socket) < 1e-3, name  # eyes and teeth stay in place


def test_separate_eyes_without_gaze_targets_turn_with_the_gaze():
    """A rig without eyeLook* targets: its eye nodes turn by the driver's gaze (head-relative), in place."""
    data = capture_glb(tuple(n for n in ARKIT_52 if not n.startswith("eyeLook")))
    rig = GltfRig.from_document(read_document(data, "capture.glb"), "capture.glb")
    assert rig.eyes == (2, 3)  # EyeLeft sits at +x (the subject's left), EyeRight at -x
    weights, rotation = capture_driver()
    gaze = np.zeros((len(weights), 6))
    gaze[:, [0, 3]] = np.radians(15.0)  # both eyes look 15 degrees to the subject's left
    gaze[:, [1, 4]] = np.radians(-5.0)  # and 5 up
    config = RetargetConfig(neutral="none", smoothing="none")
    looking = retarget(weights, rotation, None, FPS, rig, config, gaze)
    ahead = retarget(weights, rotation, None, FPS, rig, config)
    for (node, rot, tr), (_, rot0, tr0) in zip(looking.companions, ahead.companions):
        for k in (0, -1):
            eye, still = _world(rot[k], tr[k]), _world(rot0[k], tr0[k])
            np.testing.assert_allclose(eye[:3, 3], still[:3, 3], atol=1e-9)  # turned in place
            relative = Rotation.from_matrix(eye[:3, :3] @ still[:3, :3].T)  # the gaze's turn, in world axes
            head = _world(looking.rotation[k], looking.translation[k])[:3, :3] @ _world(
                looking.rotation[0], looking.translation[0])[:3, :3].T
            local = Rotation.from_matrix(head.T) * relative * Rotation.from_matrix(head)  # in the head's frame
            if node in rig.eyes:
                np.testing.assert_allclose(local.as_euler("YXZ", degrees=True), [15.0, -5.0, 0.0], atol=1e-6)
            else:  # the teeth do not look anywhere
                assert relative.magnitude() < 1e-9
    off = retarget(weights, rotation, None, FPS, rig, RetargetConfig(neutral="none", smoothing="none",
                                                                      eye_gaze=False), gaze)
    np.testing.assert_allclose(np.stack([r for _, r, _ in off.companions]),
                               np.stack([r for _, r, _ in ahead.companions]))


def test_three_js_plays_the_driven_capture_file_and_reads_the_compressed_one(driven, tmp_path):
    """three.js (its own meshopt / Draco decoders) sees the compressed input as we decode it, and plays the
    driven file: the jaw opens to 0.8, the head turns 20 degrees of yaw and 15 of pitch, eyes and teeth
    stay within 1 mm of their sockets."""
    from three_tools import view_in_three

    variant, original, data = driven
    source, path = tmp_path / f"capture_{variant}.glb", tmp_path / f"capture_{variant}_driven.glb"
    source.write_bytes(original)
    path.write_bytes(data)
    chunks = read_glb(data)
    times = chunks.document["animations"][0]["samplers"][0]["input"]
    end = float(read_values(chunks.document, chunks.binary, times)[-1, 0])
    view = view_in_three(path, [0.0, end], node_names=["HeadMesh", *PARTS])
    assert view.animations == ("facecast",)
    np.testing.assert_allclose(view.influence("blendShape1.jawOpen")["HeadMesh"], [0.0, 0.8], atol=1e-3)
    matrices = view.matrices
    head = [m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0) for m in matrices["HeadMesh"]]
    yaw, pitch, _ = Rotation.from_matrix(head[1] @ head[0].T).as_euler("YXZ", degrees=True)
    assert yaw == pytest.approx(20.0, abs=1.0) and pitch == pytest.approx(15.0, abs=1.0)
    moved = matrices["HeadMesh"][1] @ np.linalg.inv(matrices["HeadMesh"][0])
    for name in PARTS:
        centre = mesh_centre(chunks.document, name)
        assert np.linalg.norm((matrices[name][1] @ centre)[:3] - (moved @ matrices[name][0] @ centre)[:3]) < 1e-3
    if variant != "plain":  # three.js decodes the input itself: the same geometry as our decoded output
        first = view_in_three(source, [0.0])
        np.testing.assert_allclose(first.bounds, view.boxes[0], atol=2e-4)
