"""A face-capture app's GLB (issue #16): the head mesh in a parent turned 90 degrees, its node's origin at the
floor far below the head, eyes and teeth as separate meshes beside it. Driving it turns the head about a
neck pivot and the eyes and teeth with it; gltf-validator and Blender read the result."""

from __future__ import annotations

import numpy as np
import pygltflib as gl
import pytest
from gltf_tools import run_blender, validate
from scipy.spatial.transform import Rotation

from facecast.pipelines.export.gltf_animation import animate_glb
from facecast.recon.model.arkit import ARKIT_52
from facecast.transfer.gltf_rig import GltfRig
from facecast.transfer.retarget import RetargetConfig, retarget
from facecast.transfer.rigs import read_document

FPS = 30.0
TURNED = Rotation.from_euler("x", -90, degrees=True)  # z-up scene under a y-up glTF
HEAD_CENTRE = np.array([0.0, 0.0, 1.6])               # in the parent's (z-up) frame: 1.6 m above the origin
PARTS = {"EyeLeft": (0.032, -0.085, 1.63), "EyeRight": (-0.032, -0.085, 1.63), "Teeth": (0.0, -0.075, 1.55)}


def _sphere(radius: float, centre=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    return (np.asarray(sphere.vertices) + centre).astype(np.float32), np.asarray(sphere.faces, np.uint16)


def capture_glb(shapes: tuple[str, ...] = ARKIT_52) -> bytes:
    gltf = gl.GLTF2(asset=gl.Asset(version="2.0"), scene=0, scenes=[gl.Scene(nodes=[0])])
    blob = bytearray()

    def accessor(array: np.ndarray, kind: str, target: int | None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data), target=target))
        blob.extend(data + b"\0" * (-len(data) % 4))
        component = gl.FLOAT if array.dtype == np.float32 else gl.UNSIGNED_SHORT
        item = gl.Accessor(bufferView=len(gltf.bufferViews) - 1, componentType=component, count=len(array),
                           type=kind)
        if bounds:
            item.min, item.max = array.min(0).tolist(), array.max(0).tolist()
        gltf.accessors.append(item)
        return len(gltf.accessors) - 1

    def mesh(vertices, faces, targets=()) -> int:
        attributes = gl.Attributes(POSITION=accessor(vertices, gl.VEC3, gl.ARRAY_BUFFER, bounds=True))
        primitive = gl.Primitive(attributes=attributes, indices=accessor(faces.ravel(), gl.SCALAR,
                                                                         gl.ELEMENT_ARRAY_BUFFER))
        if targets:
            primitive.targets = [gl.Attributes(POSITION=accessor(d, gl.VEC3, gl.ARRAY_BUFFER, bounds=True))
                                 for d in targets]
        gltf.meshes.append(gl.Mesh(primitives=[primitive], weights=[0.0] * len(targets) or None,
                                   extras={"targetNames": [f"blendShape1.{n}" for n in shapes]} if targets else {}))
        return len(gltf.meshes) - 1

    head_v, head_f = _sphere(0.1, HEAD_CENTRE)  # the vertices sit 1.6 m from the node's origin
    rng = np.random.default_rng(0)
    deltas = [(rng.normal(size=head_v.shape) * 0.002).astype(np.float32) for _ in shapes]
    gltf.nodes.append(gl.Node(name="Armature", rotation=TURNED.as_quat().tolist(), children=[1, 2, 3, 4]))
    gltf.nodes.append(gl.Node(name="HeadMesh", mesh=mesh(head_v, head_f, deltas)))
    for name, centre in PARTS.items():
        gltf.nodes.append(gl.Node(name=name, mesh=mesh(*_sphere(0.012 if name != "Teeth" else 0.02)),
                                  translation=list(centre)))
    gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
    gltf.set_binary_blob(bytes(blob))
    return b"".join(gltf.save_to_bytes())


def _driver(frames: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Still for 2 frames, then a turn to +20 degrees of yaw and 15 of pitch (head down)."""
    ramp = np.clip((np.arange(frames) - 2) / (frames - 6), 0.0, 1.0)
    euler = np.stack([np.radians(15.0) * ramp, np.radians(20.0) * ramp, np.zeros(frames)], 1)
    rotation = Rotation.from_euler("YXZ", euler[:, [1, 0, 2]]).as_rotvec()  # yaw about y, then pitch about x
    return np.zeros((frames, 53)), rotation


def _world(pose_rotation, pose_translation) -> np.ndarray:
    """World matrix of a child of the turned parent with this local rotation (xyzw) and translation."""
    local = np.eye(4)
    local[:3, :3], local[:3, 3] = Rotation.from_quat(pose_rotation).as_matrix(), pose_translation
    parent = np.eye(4)
    parent[:3, :3] = TURNED.as_matrix()
    return parent @ local


@pytest.fixture(scope="module")
def animated():
    data = capture_glb()
    rig = GltfRig.from_document(read_document(data, "capture.glb"), "capture.glb")
    weights, rotation = _driver()
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


def test_validator_and_blender_read_the_driven_capture_file(animated, tmp_path):
    _, animation, data = animated
    path = tmp_path / "capture_driven.glb"
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
    weights, rotation = _driver()
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
