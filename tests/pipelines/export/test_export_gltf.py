"""GLB export: read back with pygltflib (incl. sparse accessors) and trimesh, checked by
gltf-validator and by Blender's importer when they are installed."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from avatar_tools import expected_arkit_morphs

from facecast.pipelines.export import export_bytes
from facecast.pipelines.export.avatar import build_avatar, random_identity
from facecast.pipelines.export.gltf import GltfOptions, MaterialTexture, export_glb, split_primitives
from facecast.recon.model.arkit import ARKIT_52, arkit_from_camel

REPO = Path(__file__).resolve().parents[3]
SUPPORT = REPO / "tests" / "support"
VALIDATOR = REPO / ".ci" / "node" / "node_modules" / "gltf-validator"
BLENDER_PYTHONPATH = REPO / ".ci" / "blender-py"
COMPONENTS = {pygltflib.FLOAT: "<f4", pygltflib.UNSIGNED_SHORT: "<u2", pygltflib.UNSIGNED_INT: "<u4"}
WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}


@pytest.fixture(scope="module")
def avatar(model):
    return build_avatar(model, random_identity(seed=11))


@pytest.fixture(scope="module")
def glb(avatar):
    return export_glb(avatar)


@pytest.fixture(scope="module")
def gltf(glb):
    return pygltflib.GLTF2.load_from_bytes(glb)


def _view(gltf, index, dtype, count):
    view = gltf.bufferViews[index]
    blob = gltf.binary_blob()
    return np.frombuffer(blob, dtype, count, view.byteOffset or 0)


def read_accessor(gltf, index):
    """Decode an accessor, with its sparse substitution, as the glTF spec defines it."""
    accessor = gltf.accessors[index]
    width, dtype = WIDTH[accessor.type], COMPONENTS[accessor.componentType]
    if accessor.bufferView is None:
        data = np.zeros(accessor.count * width, dtype)
    else:
        data = _view(gltf, accessor.bufferView, dtype, accessor.count * width).copy()
    data = data.reshape(accessor.count, width)
    if accessor.sparse is not None:
        sparse = accessor.sparse
        rows = _view(gltf, sparse.indices.bufferView, COMPONENTS[sparse.indices.componentType],
                     sparse.count)
        data[rows] = _view(gltf, sparse.values.bufferView, dtype, sparse.count * width).reshape(-1, width)
    return data


def test_glb_structure_and_names(gltf, avatar, model):
    assert gltf.asset.version == "2.0" and gltf.scenes[gltf.scene].nodes == [0]
    assert gltf.nodes[0].mesh == 0
    mesh = gltf.meshes[0]
    assert mesh.extras["targetNames"] == list(ARKIT_52)  # the 52 exact ARKit names, in Apple's order
    assert mesh.weights == [0.0] * 52
    assert [m.name for m in gltf.materials] == list(avatar.material_names)
    assert [p.material for p in mesh.primitives] == list(range(len(avatar.material_names)))
    assert all(len(p.targets) == 52 and p.mode == pygltflib.TRIANGLES for p in mesh.primitives)
    ict = pygltflib.GLTF2.load_from_bytes(export_glb(avatar, GltfOptions(names="ict"))).meshes[0]
    assert ict.extras["targetNames"] == list(model.expression_names) and len(ict.weights) == 53
    assert all(arkit_from_camel(name) in ARKIT_52 for name in ict.extras["targetNames"])
    skin = gltf.materials[avatar.material_names.index("M_Face")].pbrMetallicRoughness
    assert skin.baseColorFactor[0] > skin.baseColorFactor[2] and skin.metallicFactor == 0.0


def test_glb_geometry_equals_model_in_metres(gltf, avatar, model):
    parts = split_primitives(avatar)
    triangles = 0
    for primitive, part in zip(gltf.meshes[0].primitives, parts, strict=True):
        ids = avatar.source_vertex_ids[part.source]        # rows of the full ICT model
        positions = read_accessor(gltf, primitive.attributes.POSITION)
        np.testing.assert_allclose(positions, avatar.vertices[part.source] / 100, atol=1e-7)
        accessor = gltf.accessors[primitive.attributes.POSITION]
        np.testing.assert_array_equal(accessor.min, positions.min(axis=0))
        np.testing.assert_array_equal(accessor.max, positions.max(axis=0))
        basis = expected_arkit_morphs(model, random_identity(seed=11))[:, ids] / 100
        for k, target in enumerate(primitive.targets):
            if ARKIT_52[k] != "tongueOut":  # made by the exporter (test_arkit_morphs.py)
                np.testing.assert_allclose(read_accessor(gltf, target["POSITION"]), basis[k], atol=1e-7)
        uv = read_accessor(gltf, primitive.attributes.TEXCOORD_0)
        np.testing.assert_allclose(uv[:, 0], avatar.uvs[part.uv, 0], atol=1e-6)
        np.testing.assert_allclose(uv[:, 1], 1 - avatar.uvs[part.uv, 1], atol=1e-6)
        indices = read_accessor(gltf, primitive.indices).reshape(-1, 3)
        assert indices.max() == len(part.source) - 1
        chosen = avatar.face_material == part.material
        assert len(indices) == chosen.sum() + avatar.is_quad[chosen].sum()
        triangles += len(indices)
        # (vertex, uv) pairs are unique: a vertex is split only at UV seams
        assert len(np.unique(np.stack([part.source, part.uv], 1), axis=0)) == len(part.source)
    assert triangles == avatar.n_polygons + avatar.is_quad.sum()


def test_glb_normals_unit_and_equal_across_seams(gltf, avatar):
    parts = split_primitives(avatar)
    normals_by_vertex = np.full((avatar.n_vertices, 3), np.nan, dtype=np.float32)
    for primitive, part in zip(gltf.meshes[0].primitives, parts, strict=True):
        normals = read_accessor(gltf, primitive.attributes.NORMAL)
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
        seen = ~np.isnan(normals_by_vertex[part.source, 0])
        np.testing.assert_array_equal(normals[seen], normals_by_vertex[part.source][seen])
        normals_by_vertex[part.source] = normals
    # a UV seam: the same vertex in several rows of one primitive, one normal
    face = parts[0]
    _, counts = np.unique(face.source, return_counts=True)
    assert (counts > 1).any()
    tip = np.argmax(avatar.vertices[:, 2])
    assert normals_by_vertex[tip, 2] > 0.9


def test_glb_uses_sparse_targets_and_is_smaller(glb, gltf, avatar):
    sparse = [a for a in gltf.accessors if a.sparse is not None]
    # every accessor has a view (assimp, Open3D's reader, refuses one without); the sparse ones share
    # one zero view per vertex count, and a target that moves nothing is that view alone
    assert all(a.bufferView is not None for a in gltf.accessors)
    bases = {a.bufferView for a in sparse}
    assert len(bases) == len({a.count for a in sparse})
    empty = [a for a in gltf.accessors if a.sparse is None and a.bufferView in bases]
    assert sparse and empty                       # e.g. eyeBlink does not move the teeth
    for view in bases:
        start = gltf.bufferViews[view].byteOffset
        assert not any(gltf.binary_blob()[start:start + gltf.bufferViews[view].byteLength])
    dense = export_glb(avatar, GltfOptions(sparse_targets=False))
    assert len(glb) < 0.7 * len(dense)
    assert len(glb) / 1e6 < 12


def test_glb_min_delta_drops_small_offsets(avatar):
    small = pygltflib.GLTF2.load_from_bytes(export_glb(avatar, GltfOptions(min_delta=1e-5)))
    for target in small.meshes[0].primitives[0].targets:
        delta = np.linalg.norm(read_accessor(small, target["POSITION"]), axis=1)
        assert ((delta == 0) | (delta >= 1e-5 * 0.999)).all()
    with pytest.raises(ValueError, match="min_delta"):
        GltfOptions(min_delta=-1.0)


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 150, 120)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def textured_glb(model):
    face = build_avatar(model, random_identity(seed=1), ["face", "eyes"])
    return export_glb(face, GltfOptions(textures=(MaterialTexture("M_Face", _png()),)))


def test_glb_texture_hook(textured_glb, avatar):
    gltf = pygltflib.GLTF2.load_from_bytes(textured_glb)
    assert len(gltf.images) == 1 and gltf.images[0].mimeType == "image/png"
    face = next(m for m in gltf.materials if m.name == "M_Face")
    assert face.pbrMetallicRoughness.baseColorTexture.index == 0
    image = gltf.bufferViews[gltf.images[0].bufferView]
    assert gltf.binary_blob()[image.byteOffset:image.byteOffset + 8] == b"\x89PNG\r\n\x1a\n"
    lacrimal = next(m for m in gltf.materials if m.name == "M_LacrimalFluid")
    assert lacrimal.alphaMode == "BLEND" and lacrimal.pbrMetallicRoughness.baseColorFactor[3] < 1
    with pytest.raises(ValueError, match="M_Nope"):
        export_glb(avatar, GltfOptions(textures=(MaterialTexture("M_Nope", _png()),)))
    with pytest.raises(ValueError, match="not PNG"):
        export_glb(avatar, GltfOptions(textures=(MaterialTexture("M_Face", b"GIF89a"),)))


def test_glb_through_trimesh(glb, avatar):
    import trimesh

    scene = trimesh.load(io.BytesIO(glb), file_type="glb", process=False)
    vertices = np.concatenate([g.vertices for g in scene.geometry.values()])
    np.testing.assert_allclose(vertices.min(axis=0), avatar.vertices.min(axis=0) / 100, atol=1e-7)
    np.testing.assert_allclose(vertices.max(axis=0), avatar.vertices.max(axis=0) / 100, atol=1e-7)
    assert len(vertices) == sum(len(p.source) for p in split_primitives(avatar))
    assert export_bytes(avatar, "glb", stem="x") == {"x.glb": glb}


VALIDATE_JS = """
const fs = require('fs');
const validator = require(process.argv[1]);
Promise.all(process.argv.slice(2).map(f => validator.validateBytes(
    new Uint8Array(fs.readFileSync(f)), {maxIssues: 100}))).then(reports => {
  console.log(JSON.stringify(reports.map(r => r.issues)));
}, error => { console.error(String(error)); process.exit(1); });
"""


def test_gltf_validator_reports_no_errors(glb, textured_glb, tmp_path):
    node = shutil.which("node")
    if node is None or not VALIDATOR.is_dir():
        pytest.skip("gltf-validator not installed (npm install --prefix .ci/node gltf-validator)")
    files = [tmp_path / "avatar.glb", tmp_path / "textured.glb"]
    files[0].write_bytes(glb)
    files[1].write_bytes(textured_glb)
    run = subprocess.run([node, "-e", VALIDATE_JS, str(VALIDATOR), *map(str, files)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for path, issues in zip(files, json.loads(run.stdout), strict=True):
        problems = [m for m in issues["messages"] if m["severity"] <= 1]
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, (path.name, problems)
        # infos allowed: TEXCOORD_0 unused while a material has no texture
        assert {m["code"] for m in issues["messages"]} <= {"UNUSED_OBJECT"}


def test_blender_imports_shape_keys(glb, avatar, model, tmp_path):
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("blender not installed")
    path = tmp_path / "avatar.glb"
    path.write_bytes(glb)
    env = dict(os.environ)
    if BLENDER_PYTHONPATH.is_dir():               # Blender's importer needs numpy
        env["PYTHONPATH"] = str(BLENDER_PYTHONPATH)
    script = SUPPORT / "blender_import_glb.py"
    run = subprocess.run([blender, "-b", "--factory-startup", "--python-exit-code", "1",
                          "--python", str(script), "--", str(path)],
                         capture_output=True, text=True, timeout=300, env=env)
    if "No module named 'numpy'" in run.stdout + run.stderr:
        pytest.skip("Blender's Python has no numpy (pip install --target .ci/blender-py 'numpy>=2')")
    lines = [line for line in run.stdout.splitlines() if line.startswith("FACECAST_RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("FACECAST_RESULT "))
    (obj,) = result["objects"]
    assert obj["shape_keys"] == ["Basis", *ARKIT_52]
    assert obj["materials"] == list(avatar.material_names)
    assert obj["vertices"] == sum(len(p.source) for p in split_primitives(avatar))
    assert obj["polygons"] == avatar.n_polygons + avatar.is_quad.sum()
    expected = np.linalg.norm(expected_arkit_morphs(model, random_identity(seed=11))[:, avatar.source_vertex_ids],
                              axis=2).max(axis=1) / 100     # metres
    got = np.array([obj["max_offset"][name] for name in ARKIT_52])
    tongue = ARKIT_52.index("tongueOut")
    np.testing.assert_allclose(np.delete(got, tongue), np.delete(expected, tongue), atol=1e-6)
    assert got[tongue] > 0.02  # the tongue comes out by centimetres
    # Blender turns glTF +y up into +z up: the head's height is on z
    height = (avatar.vertices[:, 1].max() - avatar.vertices[:, 1].min()) / 100
    assert abs(obj["z_extent"] - height) < 1e-4
