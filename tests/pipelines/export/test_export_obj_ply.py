"""AvatarMesh building, identities, OBJ/PLY exports read back by trimesh/open3d, atomic writes."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from avatar_tools import expected_morphs

from facecast.pipelines.export import ExportError, export_bytes, write_mesh
from facecast.pipelines.export.avatar import (
    RANDOM_IDENTITY_CLIP,
    IdentityError,
    build_avatar,
    compact_indices,
    identity_from,
    random_identity,
)
from facecast.recon.model.eyes import PUPIL_MATERIAL, eye_layout
from facecast.recon.model.topology import RegionError

TOLERANCE_CM = 1e-5


@pytest.fixture(scope="module")
def identity():
    return random_identity(seed=7)


@pytest.fixture(scope="module")
def avatar(model, identity):
    return build_avatar(model, identity)


@pytest.fixture(scope="module")
def face_avatar(model, identity):
    """Only the face skin: all quads, one material."""
    return build_avatar(model, identity, ["face"])


def _expected_vertices(model, identity):
    with torch.no_grad():
        weights = torch.as_tensor(identity, dtype=torch.float32)[None]
        return model(weights, torch.zeros(1, 53)).vertices[0].numpy()


# --- AvatarMesh -----------------------------------------------------------------------------

def test_compact_indices_renumbers_in_order_and_keeps_padding():
    polygons = np.array([[7, 3, 9, -1], [3, 9, 12, 7]])
    new, used = compact_indices(polygons)
    assert used.tolist() == [3, 7, 9, 12]
    assert new.tolist() == [[1, 0, 2, -1], [0, 2, 3, 1]]
    assert np.array_equal(used[new[new >= 0]], polygons[polygons >= 0])


def test_avatar_matches_model(avatar, model, identity, ict_data):
    full = _expected_vertices(model, identity)
    ids = avatar.source_vertex_ids
    np.testing.assert_allclose(avatar.vertices, full[ids], atol=1e-6)
    np.testing.assert_allclose(avatar.morph_deltas, expected_morphs(model, identity)[:, ids], atol=1e-6)
    assert avatar.morph_names == tuple(model.expression_names)
    # polygons are the model's polygons renumbered, less the sclera's cornea (the eyes stay open)
    kept = ict_data.region_face_mask(avatar.region_names) & ~eye_layout(ict_data).cornea
    original = ict_data.face_vertices[kept]
    assert np.array_equal(np.where(avatar.polygons >= 0, ids[avatar.polygons], -1), original)
    assert np.array_equal(avatar.uvs[avatar.face_uvs[avatar.face_uvs >= 0]],
                          ict_data.uvs[ict_data.face_uvs[kept][ict_data.face_uvs[kept] >= 0]])
    names = [avatar.material_names[k] for k in avatar.face_material]
    pupil = eye_layout(ict_data).pupil[kept]
    assert names == [PUPIL_MATERIAL if p else ict_data.material_names[k]
                     for k, p in zip(ict_data.face_material[kept], pupil)]
    # every vertex is used and the helper layers are not in the default avatar
    assert np.unique(avatar.polygons[avatar.polygons >= 0]).size == avatar.n_vertices
    assert "M_EyeOcclusion" not in avatar.material_names and "M_Teeth" in avatar.material_names


def test_avatar_regions(model, identity, face_avatar):
    assert face_avatar.material_names == ("M_Face",)
    assert face_avatar.region_names == ("face",)
    assert face_avatar.is_quad.all()
    eyes = build_avatar(model, identity, ["eyes"])
    assert set(eyes.region_names) == {"eyeballs", "lacrimal", "eye_blend", "eye_occlusion"}
    with pytest.raises(RegionError, match="nose"):
        build_avatar(model, identity, ["face", "nose"])
    with pytest.raises(ValueError, match=r"\(100,\)"):
        build_avatar(model, np.zeros(99))


def test_vertex_normals_point_outwards(face_avatar):
    normals = face_avatar.vertex_normals()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    tip = np.argmax(face_avatar.vertices[:, 2])          # nose tip: +z faces the viewer
    assert normals[tip, 2] > 0.9


def test_random_identity_is_seeded_and_bounded():
    a, b, c = random_identity(1), random_identity(1), random_identity(2)
    assert a.shape == (100,) and np.array_equal(a, b) and not np.array_equal(a, c)
    many = np.stack([random_identity(s) for s in range(200)])
    assert np.abs(many).max() <= RANDOM_IDENTITY_CLIP
    assert 0.7 < many.std() < 0.85


def test_identity_from_json(tmp_path):
    good = tmp_path / "id.json"
    good.write_text(json.dumps({"identity": [0.5] * 100}))
    assert identity_from(good).tolist() == [0.5] * 100
    assert np.array_equal(identity_from("random", seed=3), random_identity(3))
    cases = {"short.json": json.dumps({"identity": [0.0] * 99}),
             "nan.json": '{"identity": [NaN' + ", 0" * 99 + "]}",
             "text.json": '{"identity": ["a"' + ", 0" * 99 + "]}",
             "broken.json": "{not json", "list.json": "[1, 2]"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(IdentityError, match=name.replace(".", r"\.")):
            identity_from(tmp_path / name)
    with pytest.raises(IdentityError, match="missing.json"):
        identity_from(tmp_path / "missing.json")


# --- OBJ ------------------------------------------------------------------------------------

def _corner_table(avatar, material):
    """Unique (x, y, z, u, v) rows of one material's polygon corners."""
    chosen = avatar.face_material == material
    v = avatar.polygons[chosen].ravel()
    t = avatar.face_uvs[chosen].ravel()
    pairs = np.unique(np.stack([v[v >= 0], t[t >= 0]], axis=1), axis=0)
    return np.hstack([avatar.vertices[pairs[:, 0]], avatar.uvs[pairs[:, 1]]]), pairs[:, 0]


def test_obj_round_trip_through_trimesh(avatar, tmp_path):
    import trimesh
    from scipy.spatial import cKDTree

    written = write_mesh(avatar, tmp_path / "head.obj")
    assert [p.name for p in written] == ["head.mtl", "head.obj"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scene = trimesh.load(tmp_path / "head.obj", process=False)
    assert sorted(scene.geometry) == sorted(avatar.material_names)
    for material, name in enumerate(avatar.material_names):
        loaded = scene.geometry[name]
        assert loaded.visual.material.name == name
        expected, vertex_of_row = _corner_table(avatar, material)
        got = np.hstack([loaded.vertices, loaded.visual.uv])
        assert got.shape == expected.shape
        distance, row = cKDTree(expected).query(got)
        assert distance.max() < TOLERANCE_CM
        # each loaded triangle lies on one of our polygons (quads split either way)
        chosen = avatar.polygons[avatar.face_material == material]
        assert len(loaded.faces) == len(chosen) + int((chosen[:, 3] >= 0).sum())
        loaded_triangles = np.sort(vertex_of_row[row][loaded.faces], axis=1)
        allowed = _possible_triangles(chosen)
        assert np.isin(_keys(loaded_triangles), _keys(allowed)).all()


def _possible_triangles(polygons):
    """Every triangle a reader may cut from the polygons (sorted corner ids)."""
    quads = polygons[polygons[:, 3] >= 0]
    options = [polygons[polygons[:, 3] < 0][:, :3]] + [quads[:, list(c)] for c in
                                                       ((0, 1, 2), (0, 2, 3), (0, 1, 3), (1, 2, 3))]
    return np.sort(np.concatenate(options), axis=1)


def _keys(triangles):
    triangles = triangles.astype(np.int64)
    return (triangles[:, 0] * 1_000_003 + triangles[:, 1]) * 1_000_003 + triangles[:, 2]


def test_obj_text_keeps_quads_and_materials(avatar):
    files = export_bytes(avatar, "obj", stem="head")
    assert list(files) == ["head.mtl", "head.obj"]
    text = files["head.obj"].decode()
    lines = text.splitlines()
    assert "mtllib head.mtl" in lines
    faces = [line.split() for line in lines if line.startswith("f ")]
    assert len(faces) == avatar.n_polygons
    assert sum(len(f) == 5 for f in faces) == int(avatar.is_quad.sum())
    assert sum(line.startswith("v ") for line in lines) == avatar.n_vertices
    assert sum(line.startswith("vt ") for line in lines) == len(avatar.uvs)
    used = [line.split()[1] for line in lines if line.startswith("usemtl ")]
    assert used == list(avatar.material_names)
    mtl = files["head.mtl"].decode()
    assert [line.split()[1] for line in mtl.splitlines() if line.startswith("newmtl")] == used
    # the first polygon of the first material, 1-based v/vt
    first = avatar.polygons[avatar.face_material == 0][0]
    first_uv = avatar.face_uvs[avatar.face_material == 0][0]
    expected = [f"{v + 1}/{t + 1}" for v, t in zip(first, first_uv, strict=True) if v >= 0]
    assert faces[0][1:] == expected


# --- PLY ------------------------------------------------------------------------------------

def test_ply_round_trip_through_open3d(avatar, tmp_path):
    o3d = pytest.importorskip("open3d")
    write_mesh(avatar, tmp_path / "head.ply")
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "head.ply"))
    np.testing.assert_allclose(np.asarray(mesh.vertices), avatar.vertices, atol=TOLERANCE_CM)
    triangles = np.sort(np.asarray(mesh.triangles), axis=1)
    assert len(triangles) == avatar.n_polygons + int(avatar.is_quad.sum())
    assert np.isin(_keys(triangles), _keys(_possible_triangles(avatar.polygons))).all()


def test_ply_binary_layout_keeps_quads(avatar):
    data = export_bytes(avatar, ".ply")["avatar.ply"]
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    assert b"format binary_little_endian 1.0" in data[:header_end]
    vertices = np.frombuffer(data, "<f4", avatar.n_vertices * 3, header_end).reshape(-1, 3)
    np.testing.assert_array_equal(vertices, avatar.vertices)
    cursor, faces = header_end + vertices.nbytes, []
    for _ in range(avatar.n_polygons):
        count = data[cursor]
        faces.append(np.frombuffer(data, "<i4", count, cursor + 1).tolist())
        cursor += 1 + 4 * count
    assert cursor == len(data)
    assert faces == [p[p >= 0].tolist() for p in avatar.polygons]


def test_ply_all_quads_through_trimesh(face_avatar, tmp_path):
    import trimesh

    write_mesh(face_avatar, tmp_path / "face.ply")
    mesh = trimesh.load(tmp_path / "face.ply", process=False)
    np.testing.assert_allclose(mesh.vertices, face_avatar.vertices, atol=TOLERANCE_CM)
    assert len(mesh.faces) == 2 * face_avatar.n_polygons


# --- write_mesh -----------------------------------------------------------------------------

def test_write_mesh_errors(face_avatar, tmp_path):
    with pytest.raises(ExportError, match=r"\.fbx is not a known format.*\.glb, \.obj, \.ply"):
        write_mesh(face_avatar, tmp_path / "head.fbx")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        write_mesh(face_avatar, tmp_path / "file" / "head.obj")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        write_mesh(face_avatar, tmp_path / "file" / "deeper" / "head.obj")
    (tmp_path / "taken.mtl").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        write_mesh(face_avatar, tmp_path / "taken.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken.mtl"]
    write_mesh(face_avatar, tmp_path / "new" / "folders" / "head.obj")  # missing folders are created
    assert sorted(p.name for p in (tmp_path / "new" / "folders").iterdir()) == ["head.mtl", "head.obj"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_write_mesh_read_only_folder(face_avatar, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    with pytest.raises(ExportError, match="not writable"):
        write_mesh(face_avatar, folder / "head.ply")


def test_write_mesh_obj_pair_is_all_or_nothing(face_avatar, tmp_path, monkeypatch):
    import facecast.pipelines.export as export

    (tmp_path / "head.mtl").write_text("old mtl")
    (tmp_path / "head.obj").write_text("old obj")
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("head.obj") and str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(export.os, "replace", failing_replace)
    with pytest.raises(ExportError, match="No space left"):
        write_mesh(face_avatar, tmp_path / "head.obj")
    assert (tmp_path / "head.mtl").read_text() == "old mtl"
    assert (tmp_path / "head.obj").read_text() == "old obj"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.mtl", "head.obj"]
    monkeypatch.setattr(export.os, "replace", real_replace)
    write_mesh(face_avatar, tmp_path / "head.obj")
    assert (tmp_path / "head.mtl").read_text().startswith("# facecast")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.mtl", "head.obj"]
