"""Animated glTF: an animation added to a user's GLB keeps every original byte and JSON
object, decodes to what retarget produced, passes gltf-validator and imports in Blender."""

from __future__ import annotations

import base64
import json
import warnings

import numpy as np
import pytest
from gltf_tools import arkit_sphere_glb, read_accessor, run_blender, validate

from facecast.pipelines.export.avatar import build_avatar, random_identity
from facecast.pipelines.export.gltf_animation import (
    animate_document,
    animate_glb,
    animate_gltf,
    animated_avatar_glb,
)
from facecast.transfer.glb import GlbChunks, read_glb, write_glb
from facecast.transfer.gltf_rig import GltfRig
from facecast.transfer.retarget import Animation, MorphTrack, RetargetConfig, retarget
from facecast.transfer.rig_loader import load_rig
from facecast.transfer.rigs import IctRig, RigWarning

FPS = 30.0
FRAMES = 40
UNCHANGED = ("bufferViews", "accessors", "meshes", "materials", "nodes", "scenes")


def _driver(frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(frames) / FPS
    weights = np.clip(0.5 + 0.4 * np.sin(2 * np.pi * 0.7 * t[:, None] + np.arange(53)), 0, 1)
    rotation = np.stack([0.1 * np.sin(t), 0.3 * np.sin(2 * t), np.zeros(frames)], axis=1)
    translation = np.stack([np.sin(t), np.zeros(frames), -60 + np.cos(t)], axis=1)
    return weights, rotation, translation


@pytest.fixture(scope="module")
def user_glb() -> bytes:
    return arkit_sphere_glb()


@pytest.fixture(scope="module")
def animation(user_glb, tmp_path_factory) -> Animation:
    path = tmp_path_factory.mktemp("rig") / "user.glb"
    path.write_bytes(user_glb)
    with pytest.warns(RigWarning, match="customWrinkle"):
        rig = load_rig(path)
    assert isinstance(rig, GltfRig) and rig.head_node == 1
    config = RetargetConfig(neutral="none", smoothing="one_euro", translation=True)
    return retarget(*_driver(), FPS, rig, config)


@pytest.fixture(scope="module")
def animated(user_glb, animation) -> bytes:
    return animate_glb(user_glb, animation)


def test_original_bytes_and_json_are_kept(user_glb, animated):
    before, after = read_glb(user_glb), read_glb(animated)
    assert after.binary[:len(before.binary)] == before.binary
    assert len(before.binary) % 4 == 0 and len(after.binary) % 4 == 0
    for key in UNCHANGED:
        assert after.document[key][:len(before.document[key])] == before.document[key], key
    assert after.document["meshes"] == before.document["meshes"]
    assert after.document["materials"] == before.document["materials"]
    assert after.document["buffers"] == [{"byteLength": len(after.binary)}]
    new_views = after.document["bufferViews"][len(before.document["bufferViews"]):]
    assert min(v["byteOffset"] for v in new_views) == len(before.binary)
    assert all(v["byteOffset"] % 4 == 0 for v in new_views)


def test_animation_channels_samplers_and_accessors(animated, animation):
    chunks = read_glb(animated)
    document = chunks.document
    (clip,) = document["animations"]
    assert clip["name"] == "facecast"
    paths = [(c["target"]["node"], c["target"]["path"]) for c in clip["channels"]]
    assert paths == [(1, "weights"), (1, "rotation"), (1, "translation")]
    assert len(clip["samplers"]) == 3 and all(s["interpolation"] == "LINEAR" for s in clip["samplers"])
    accessors = document["accessors"]
    times = accessors[clip["samplers"][0]["input"]]
    assert times["count"] == FRAMES and times["min"] == [0.0]
    assert times["max"][0] == pytest.approx((FRAMES - 1) / FPS)
    weights, rotation, translation = (accessors[s["output"]] for s in clip["samplers"])
    assert (weights["count"], weights["type"]) == (FRAMES * 53, "SCALAR")
    assert (rotation["count"], rotation["type"]) == (FRAMES, "VEC4")
    assert (translation["count"], translation["type"]) == (FRAMES, "VEC3")
    decoded = read_accessor(document, chunks.binary, clip["samplers"][0]["output"]).reshape(FRAMES, 53)
    (track,) = animation.morphs
    np.testing.assert_array_equal(decoded, track.weights.astype(np.float32))
    assert track.weights[:, -1].max() == 0.0 and track.weights[:, 17].max() > 0.5   # customWrinkle idle
    quats = read_accessor(document, chunks.binary, clip["samplers"][1]["output"])
    np.testing.assert_allclose(quats, animation.rotation, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-6)
    moved = read_accessor(document, chunks.binary, clip["samplers"][2]["output"])
    np.testing.assert_allclose(moved, animation.translation, atol=1e-7)
    np.testing.assert_allclose(moved[0], [0.0, 0.5, 0.0], atol=1e-7)   # starts at the rest translation


def test_a_second_animation_appends(animated, animation):
    twice = read_glb(animate_glb(animated, animation, name="take2"))
    assert [a["name"] for a in twice.document["animations"]] == ["facecast", "take2"]
    assert twice.binary[:len(read_glb(animated).binary)] == read_glb(animated).binary


def test_validator_reports_no_errors_or_new_issues(user_glb, animated, model, tmp_path):
    rig = IctRig(random_identity(seed=2))
    mesh = build_avatar(model, rig.identity)
    ict = retarget(*_driver(12), FPS, rig, RetargetConfig(neutral="frame", smoothing="zero_phase"))
    files = {"user.glb": user_glb, "animated.glb": animated, "ict.glb": animated_avatar_glb(mesh, ict)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    reports = dict(zip(files, validate([tmp_path / n for n in files]), strict=True))
    for name, issues in reports.items():
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, (name, issues["messages"][:5])
    # the only hints are the other tool's own (bufferView.target unset), none from the animation
    assert reports["animated.glb"]["messages"] == reports["user.glb"]["messages"]
    assert {m["code"] for m in reports["ict.glb"]["messages"]} <= {"UNUSED_OBJECT"}
    clip = read_glb(files["ict.glb"]).document["animations"][0]
    assert [c["target"] for c in clip["channels"]] == [{"node": 0, "path": "weights"},
                                                       {"node": 0, "path": "rotation"}]


def test_gltf_with_data_uri_buffers_and_matrix_head(user_glb, animation, tmp_path):
    chunks = read_glb(user_glb)
    document = json.loads(json.dumps(chunks.document))
    document["buffers"][0]["uri"] = ("data:application/octet-stream;base64,"
                                     + base64.b64encode(chunks.binary).decode())
    head = document["nodes"][1]
    matrix = np.eye(4)
    matrix[:3, 3] = head.pop("translation")
    head.pop("rotation")
    head["matrix"] = matrix.T.ravel().tolist()
    document["nodes"].append({"name": "Twin", "mesh": 0})
    document["scenes"][0]["nodes"].append(3)
    original = json.dumps(document).encode()
    result = json.loads(animate_document(original, animation))
    assert animate_gltf(original, animation) == json.dumps(result, indent=1).encode()
    assert result["buffers"][0] == document["buffers"][0] and len(result["buffers"]) == 2
    clip = result["animations"][0]
    assert [(c["target"]["node"], c["target"]["path"]) for c in clip["channels"]] == [
        (1, "weights"), (3, "weights"), (1, "rotation"), (1, "translation")]
    assert clip["channels"][0]["sampler"] != clip["channels"][1]["sampler"]
    assert "matrix" not in result["nodes"][1] and result["nodes"][1]["translation"] == [0.0, 0.5, 0.0]
    blob = base64.b64decode(result["buffers"][1]["uri"].split(",", 1)[1])
    output = result["accessors"][clip["samplers"][0]["output"]]
    view = result["bufferViews"][output["bufferView"]]
    assert view["buffer"] == 1
    decoded = np.frombuffer(blob, "<f4", output["count"], view["byteOffset"]).reshape(FRAMES, 53)
    np.testing.assert_array_equal(decoded, animation.morphs[0].weights.astype(np.float32))
    path = tmp_path / "animated.gltf"
    path.write_text(json.dumps(result))
    (issues,) = validate([path])
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]


def test_clear_errors(user_glb, animation):
    plain = GlbChunks({"asset": {"version": "2.0"}, "buffers": [{"byteLength": 4}],
                       "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}], "nodes": [{"mesh": 0}]},
                      b"\0\0\0\0")
    with pytest.raises(ValueError, match="mesh 0 has 0 morph targets, the animation drives 53"):
        animate_glb(write_glb(plain), animation)
    with pytest.raises(ValueError, match="no mesh has morph targets named after ARKit"):
        GltfRig.from_document(plain.document, "plain.glb")
    external = GlbChunks({**read_glb(user_glb).document, "buffers": [{"byteLength": 4, "uri": "a.bin"}]}, None)
    with pytest.raises(ValueError, match="keeps no data in its binary chunk"):
        animate_glb(write_glb(external), animation)
    with pytest.raises(ValueError, match="not a GLB"):
        animate_glb(b"GIF89a" + bytes(40), animation)
    wrong = Animation(animation.times, (MorphTrack(1, animation.morphs[0].weights),))
    with pytest.raises(ValueError, match="mesh 1 has 0 morph targets"):
        animate_glb(user_glb, wrong)
    with pytest.raises(ValueError, match="ICT avatar animation drives mesh 0 with 53"):
        animated_avatar_glb(_tiny_avatar(), wrong)
    with pytest.raises(ValueError, match="strictly increasing"):
        Animation(np.array([0.0, 0.0]), ())


def _tiny_avatar():
    from facecast.pipelines.export.avatar import AvatarMesh

    return AvatarMesh(vertices=np.zeros((3, 3), np.float32), polygons=np.array([[0, 1, 2, -1]], np.int32),
                      uvs=np.zeros((3, 2), np.float32), face_uvs=np.array([[0, 1, 2, -1]], np.int32),
                      face_material=np.zeros(1, np.int32), material_names=("M_Face",),
                      morph_deltas=np.zeros((53, 3, 3), np.float32), morph_names=tuple(f"s{k}" for k in range(53)),
                      face_region=np.zeros(1, np.int32), region_names=("face",),
                      source_vertex_ids=np.arange(3))


BLENDER_SCRIPT = """
import bpy, json, sys
path, fps = sys.argv[sys.argv.index("--") + 1:][:2]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = int(fps)
bpy.ops.import_scene.gltf(filepath=path)
actions = []
for action in bpy.data.actions:
    curves = {f"{c.data_path}[{c.array_index}]": [list(k.co) for k in c.keyframe_points] for c in action.fcurves}
    actions.append({"name": action.name, "id_root": action.id_root,
                    "frame_range": list(action.frame_range), "curves": curves})
print("FACECAST_RESULT " + json.dumps({"actions": actions}))
sys.stdout.flush()
"""


def test_blender_imports_the_shape_key_animation(animated, animation, tmp_path):
    path = tmp_path / "animated.glb"
    path.write_bytes(animated)
    result = run_blender(BLENDER_SCRIPT, [str(path), str(int(FPS))])
    (keys,) = [a for a in result["actions"] if a["id_root"] == "KEY"]
    start, end = keys["frame_range"]
    assert end - start + 1 == FRAMES                       # T keyframes at T frames per FRAMES / FPS s
    jaw = keys["curves"]['key_blocks["blendShape1.jawOpen"].value[0]']
    assert [k[0] for k in jaw] == pytest.approx(list(range(FRAMES)))
    np.testing.assert_allclose([k[1] for k in jaw], animation.morphs[0].weights[:, 17], atol=1e-6)
    assert len(keys["curves"]) == 53
    objects = [a for a in result["actions"] if a["id_root"] == "OBJECT"]
    assert any(name.startswith("rotation_quaternion") for a in objects for name in a["curves"])


def test_ict_rig_animation_layout(model):
    rig = IctRig(np.zeros(100))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        animation = retarget(*_driver(5), FPS, rig, RetargetConfig(neutral="none", rotation=False))
    assert animation.node is None and [t.mesh for t in animation.morphs] == [0]
    assert animation.morphs[0].weights.shape == (5, 53)
    assert rig.meshes[0].target_names == tuple(model.expression_names)
