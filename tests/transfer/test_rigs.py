"""Target rigs: ARKit name matching, GltfRig mapping and warnings, VRM 0.x / 1.0 presets,
mapping overrides and the load_rig dispatcher. glTF documents are plain JSON here: rigs
read names and structure, never the binary data."""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest

from facecast.recon.model.arkit import ARKIT_52
from facecast.transfer.gltf_rig import GltfRig
from facecast.transfer.rig_loader import load_rig
from facecast.transfer.rigs import IctRig, RigWarning, channel_names, match_target_name
from facecast.transfer.vrm import VrmRig, default_vrm_mapping

CHANNELS = channel_names()


def _mesh(names: list[str] | None, count: int | None = None, per_primitive: bool = False,
          weights: list[float] | None = None) -> dict:
    count = len(names) if names is not None else count
    primitive = {"attributes": {"POSITION": 0}, "targets": [{"POSITION": 0}] * count}
    mesh = {"primitives": [primitive]}
    if names is not None:
        (primitive if per_primitive else mesh)["extras"] = {"targetNames": names}
    if weights is not None:
        mesh["weights"] = weights
    return mesh


def _doc(meshes: list[dict], nodes: list[dict] | None = None, extensions: dict | None = None) -> dict:
    doc = {"asset": {"version": "2.0"}, "meshes": meshes,
           "nodes": nodes if nodes is not None else [{"mesh": k} for k in range(len(meshes))],
           "accessors": [{"count": 3, "type": "VEC3", "componentType": 5126}]}  # what POSITION 0 points at
    if extensions:
        doc["extensions"] = extensions
    return doc


def _glb(document: dict) -> bytes:
    data = json.dumps(document).encode()
    data += b" " * (-len(data) % 4)
    return b"glTF" + struct.pack("<II", 2, 20 + len(data)) + struct.pack("<II", len(data), 0x4E4F534A) + data


def _channels(**values: float) -> np.ndarray:
    weights = np.zeros((1, 53))
    for name, value in values.items():
        weights[0, CHANNELS.index(name)] = value
    return weights


def test_channel_names_are_the_model_order(model):
    assert CHANNELS == tuple(model.expression_names)


@pytest.mark.parametrize("name, expected", [
    ("blendShape1.jawOpen", "jawOpen"), ("blendShape.JawOpen", "jawOpen"), ("BS_EyeBlinkLeft", "eyeBlinkLeft"),
    ("ARKit_mouthSmile_L", "mouthSmileLeft"), ("facial_browInnerUp", "browInnerUp"),
    ("Face:cheekPuff", "cheekPuff"), ("rig|BS_noseSneerRight", "noseSneerRight"),
    ("browInnerUpLeft", "browInnerUpLeft"), ("TONGUEOUT", "tongueOut"),
    ("customWrinkle", None), ("eyeBlink", None), ("BS_", None),
])
def test_match_target_name(name, expected):
    assert match_target_name(name) == expected


def test_gltf_rig_maps_channels_and_lists_what_it_cannot_use():
    face = ["blendShape1." + n for n in ARKIT_52 if n not in ("cheekPuff", "noseSneerLeft")] + ["wrinkle"]
    doc = _doc([_mesh(face, weights=[0.0] * (len(face) - 1) + [0.25]),
                _mesh(None, count=3),                             # targets without names: ignored
                _mesh(["hatBend", "hatFold"]),                    # nothing usable: ignored
                _mesh(["BS_browInnerUp", "eyeBlink_R"], per_primitive=True)])
    with pytest.warns(RigWarning) as caught:
        rig = GltfRig.from_document(doc, "user.glb")
    message = str(caught[0].message)
    assert "user.glb" in message and "wrinkle" in message and "hatBend" in message
    assert "cheekPuff" in message and "noseSneerLeft" in message and "eyeBlinkLeft" not in message
    assert [m.mesh for m in rig.meshes] == [0, 3]
    assert rig.missing_arkit == ("cheekPuff", "noseSneerLeft")
    face_weights, small = rig.evaluate(_channels(jawOpen=0.7, browInnerUpLeft=0.2, browInnerUpRight=0.6,
                                                 eyeBlinkRight=0.9))
    assert face_weights.shape == (1, len(face)) and small.shape == (1, 2)
    assert face_weights[0, face.index("blendShape1.jawOpen")] == pytest.approx(0.7)
    assert face_weights[0, face.index("blendShape1.browInnerUp")] == pytest.approx(0.4)   # mean of halves
    assert face_weights[0, -1] == 0.25                        # unknown target keeps its default
    assert face_weights[0, face.index("blendShape1.tongueOut")] == 0.0
    np.testing.assert_allclose(small[0], [0.4, 0.9])
    assert rig.head_node == 0                                 # the mesh with most matched targets


def test_gltf_rig_split_targets_take_channels_directly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")                        # no tongueOut: nothing is dropped
        rig = GltfRig.from_document(_doc([_mesh(list(CHANNELS))]), "ict.glb")
    weights = np.random.default_rng(0).random((4, 53))
    np.testing.assert_allclose(rig.evaluate(weights)[0], weights)


def test_gltf_rig_without_usable_targets_names_the_file(tmp_path):
    path = tmp_path / "plain.glb"
    path.write_bytes(_glb(_doc([{"primitives": [{"attributes": {"POSITION": 0}}]}])))
    with pytest.raises(ValueError, match="plain.glb.*no mesh has morph targets named after ARKit"):
        load_rig(path)


def test_gltf_rig_head_node_choice():
    nodes = [{"name": "Root", "children": [1]}, {"name": "Face", "mesh": 0, "skin": 0},
             {"name": "mixamorig:Neck"}, {"name": "mixamorig:Head", "rotation": [0, 0.6, 0, 0.8]}]
    doc = _doc([_mesh(list(ARKIT_52))], nodes)
    doc["skins"] = [{"joints": [2, 3]}]
    rig = GltfRig.from_document(doc, "skinned.glb")
    assert rig.head_node == 3                                 # the joint named head, not the skinned node
    np.testing.assert_allclose(rig.head_pose.rotation, [0, 0.6, 0, 0.8])
    assert GltfRig.from_document(doc, "x", head_node="Root").head_node == 0
    assert GltfRig.from_document(doc, "x", head_node=2).head_node == 2
    with pytest.raises(ValueError, match="no node named 'Skull'.*mixamorig:Head"):
        GltfRig.from_document(doc, "x", head_node="Skull")
    doc["skins"] = [{"joints": [2]}]
    with pytest.warns(RigWarning, match="no joint is named 'head'"):
        assert GltfRig.from_document(doc, "x").head_node is None


def test_head_pose_from_a_matrix_node():
    matrix = np.eye(4)
    matrix[:3, :3] = [[0, 0, 2], [0, 2, 0], [-2, 0, 0]]       # 90 degrees about y, scale 2
    matrix[:3, 3] = [1, 2, 3]
    doc = _doc([_mesh(list(ARKIT_52))], [{"mesh": 0, "matrix": matrix.T.ravel().tolist()}])
    pose = GltfRig.from_document(doc, "m").head_pose
    np.testing.assert_allclose(pose.translation, [1, 2, 3])
    np.testing.assert_allclose(pose.scale, [2, 2, 2])
    np.testing.assert_allclose(np.abs(pose.rotation), [0, np.sqrt(0.5), 0, np.sqrt(0.5)], atol=1e-12)


def test_load_rig_dispatches_by_content(tmp_path):
    identity = np.linspace(-1, 1, 100)
    records = tmp_path / "coeffs.glb"                         # the extension does not matter
    records.write_text(json.dumps([{"identity": identity.tolist(), "expression": [0.0] * 53},
                                   {"identity": [0.0] * 100}]))
    rig = load_rig(records)
    assert isinstance(rig, IctRig)
    np.testing.assert_array_equal(rig.identity, identity)
    assert rig.meshes[0].target_names == CHANNELS and rig.head_node == 0
    single = tmp_path / "id.json"
    single.write_text(json.dumps({"identity": [0.5] * 100}))
    assert load_rig(single).identity[0] == 0.5
    gltf = tmp_path / "face.gltf"
    gltf.write_text(json.dumps(_doc([_mesh(list(ARKIT_52))])))
    assert isinstance(load_rig(gltf), GltfRig)
    short = tmp_path / "short.json"
    short.write_text(json.dumps([{"identity": [0.0] * 99}]))
    with pytest.raises(ValueError, match="short.json.*identity"):
        load_rig(short)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not json")
    with pytest.raises(ValueError, match="junk.bin"):
        load_rig(junk)
    with pytest.raises(ValueError, match="not a VRM"):
        load_rig(gltf, vrm_mapping=single)


# ---------------------------------------------------------------- VRM

def _vrm0() -> dict:
    def group(preset, binds, binary=False, name=""):
        return {"name": name or preset, "presetName": preset, "isBinary": binary,
                "binds": [{"mesh": 0, "index": i, "weight": w} for i, w in binds]}
    groups = [group("a", [(0, 100)]), group("joy", [(1, 50), (2, 100)]), group("blink_l", [(3, 100)]),
              group("blink_r", [(4, 100)]), group("blink", [(3, 100), (4, 100)]),
              group("angry", [(5, 100)], binary=True), group("neutral", [])]
    nodes = [{"name": "Body", "mesh": 0}, {"name": "J_Bip_C_Head"}]
    extension = {"blendShapeMaster": {"blendShapeGroups": groups},
                 "humanoid": {"humanBones": [{"bone": "hips", "node": 0}, {"bone": "head", "node": 1}]}}
    return _doc([_mesh([f"Fcl_{k}" for k in range(6)])], nodes, {"VRM": extension})


def _vrm1(custom: dict | None = None) -> dict:
    def expression(binds, binary=False):
        return {"isBinary": binary, "morphTargetBinds": [{"node": 1, "index": i, "weight": w} for i, w in binds]}
    presets = {"aa": expression([(0, 1.0)]), "happy": expression([(1, 0.5), (2, 1.0)]),
               "blinkLeft": expression([(3, 1.0)]), "blinkRight": expression([(4, 1.0)]),
               "surprised": expression([(5, 1.0)])}
    nodes = [{"name": "Root", "children": [1, 2]}, {"name": "Face", "mesh": 0}, {"name": "Head"}]
    extension = {"specVersion": "1.0", "humanoid": {"humanBones": {"head": {"node": 2}}},
                 "expressions": {"preset": presets, "custom": custom or {}}}
    return _doc([_mesh([f"t{k}" for k in range(6)])], nodes, {"VRMC_vrm": extension})


def _quiet(factory, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RigWarning)
        return factory(*args, **kwargs)


def _arkit(**values: float) -> np.ndarray:
    out = np.zeros((1, 52))
    for name, value in values.items():
        out[0, ARKIT_52.index(name)] = value
    return out


def test_vrm0_presets_drive_their_binds(tmp_path):
    path = tmp_path / "avatar.vrm"
    path.write_bytes(_glb(_vrm0()))
    with pytest.warns(RigWarning, match="drive no expression"):
        rig = load_rig(path)
    assert isinstance(rig, VrmRig) and rig.version == "0.x" and rig.facing == "-z" and rig.head_node == 1
    assert rig.expression_names == ("aa", "happy", "blinkLeft", "blinkRight", "blink", "angry", "neutral")
    expressions = rig.expression_weights(_arkit(jawOpen=1.0, mouthSmileLeft=0.6, mouthSmileRight=1.0,
                                                eyeBlinkLeft=0.3, browDownLeft=0.3, browDownRight=0.5))
    np.testing.assert_allclose(expressions[0], [1.0, 0.8, 0.3, 0.0, 0.0, 0.0, 0.0])   # angry 0.4 -> 0
    (morphs,) = rig.evaluate(_channels(jawOpen=1.0, mouthSmileLeft=0.6, mouthSmileRight=1.0, eyeBlinkLeft=0.3))
    np.testing.assert_allclose(morphs[0], [1.0, 0.4, 0.8, 0.3, 0.0, 0.0])          # 0-100 weights scaled
    binary = rig.expression_weights(_arkit(browDownLeft=0.6, browDownRight=0.6))
    assert binary[0, rig.expression_names.index("angry")] == 1.0


def test_vrm1_presets_bind_through_nodes():
    rig = _quiet(VrmRig.from_document, _vrm1(), "avatar.vrm")
    assert rig.version == "1.0" and rig.facing == "+z" and rig.head_node == 2
    assert rig.meshes[0].mesh == 0 and rig.meshes[0].target_names[0] == "t0"
    (morphs,) = rig.evaluate(_channels(jawOpen=1.0, eyeBlinkRight=0.7, eyeWideLeft=1.0, eyeWideRight=1.0,
                                       browInnerUpLeft=1.0, browInnerUpRight=1.0))
    np.testing.assert_allclose(morphs[0], [1.0, 0.0, 0.0, 0.0, 0.7, 1.0])          # surprised .3+.3+.4


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_vrm_mapping_file_overrides_entries(tmp_path, suffix):
    mapping = {"aa": {"mouthFunnel": 1.0}, "joy": {}, "sorrow": {"jawOpen": 0.5}}   # 0.x names accepted
    path = tmp_path / f"map{suffix}"
    if suffix == ".yaml":
        yaml = pytest.importorskip("yaml")
        path.write_text(yaml.safe_dump(mapping))
    else:
        path.write_text(json.dumps(mapping))
    with pytest.warns(RigWarning) as caught:
        rig = VrmRig.from_document(_vrm1(), "avatar.vrm", path)
    assert any("mapping names expressions the model lacks: sad" in str(w.message) for w in caught)
    expressions = rig.expression_weights(_arkit(jawOpen=1.0, mouthFunnel=0.4, mouthSmileLeft=1.0,
                                                mouthSmileRight=1.0))
    assert expressions[0, rig.expression_names.index("aa")] == pytest.approx(0.4)
    assert expressions[0, rig.expression_names.index("happy")] == 0.0


def test_vrm_mapping_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"aa": {"jawOpenn": 1}}))
    with pytest.raises(ValueError, match="bad.json.*'jawOpenn', not an ARKit name"):
        _quiet(VrmRig.from_document, _vrm1(), "avatar.vrm", bad)
    bad.write_text(json.dumps({"aa": {"jawOpen": "a lot"}}))
    with pytest.raises(ValueError, match="aa.jawOpen must be a finite number"):
        _quiet(VrmRig.from_document, _vrm1(), "avatar.vrm", bad)


def test_vrm_blink_fallback_and_perfect_sync():
    doc = _vrm0()
    groups = doc["extensions"]["VRM"]["blendShapeMaster"]["blendShapeGroups"]
    groups[:] = [g for g in groups if g["presetName"] not in ("blink_l", "blink_r")]
    rig = _quiet(VrmRig.from_document, doc, "old.vrm")
    blink = rig.expression_weights(_arkit(eyeBlinkLeft=1.0, eyeBlinkRight=0.5))
    assert blink[0, rig.expression_names.index("blink")] == pytest.approx(0.75)
    custom = {"jawOpen": {"morphTargetBinds": [{"node": 1, "index": 5, "weight": 1.0}]},
              "EyeBlinkLeft": {"morphTargetBinds": [{"node": 1, "index": 3, "weight": 1.0}]}}
    synced = _quiet(VrmRig.from_document, _vrm1(custom), "sync.vrm")
    (morphs,) = synced.evaluate(_channels(jawOpen=0.6, eyeBlinkLeft=0.2, mouthSmileLeft=1.0))
    np.testing.assert_allclose(morphs[0], [0.0, 0.0, 0.0, 0.2, 0.0, 0.6])     # presets off, customs 1:1


def test_default_vrm_mapping_is_a_fresh_copy():
    first = default_vrm_mapping()
    first["aa"]["jawOpen"] = 5.0
    assert default_vrm_mapping()["aa"] == {"jawOpen": 1.0}
    assert all(name in ARKIT_52 for weights in first.values() for name in weights)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d["extensions"]["VRMC_vrm"]["expressions"]["preset"]["aa"]["morphTargetBinds"][0].update(
        weight=float("inf")), "weight inf"),
    (lambda d: d["extensions"]["VRMC_vrm"].update(expressions="happy"), "unreadable VRM expressions"),
    (lambda d: d["extensions"]["VRMC_vrm"]["expressions"]["preset"]["aa"]["morphTargetBinds"][0].update(
        index="zero"), "unreadable VRM expressions"),
])
def test_broken_vrm_expressions_are_refused_not_nan(change, fragment):
    """Issue #18: an Infinity bind weight gave NaN morph weights; a string where a table belongs, a traceback."""
    document = _vrm1()
    change(document)
    with pytest.raises(ValueError, match=fragment):
        _quiet(VrmRig.from_document, document, "avatar.vrm")
