"""AvatarMesh building, identities, OBJ/PLY exports read back by trimesh/open3d, atomic writes."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from avatar_tools import expected_morphs

from facecast.pipelines.export import ExportError, export_bytes, write_mesh
from facecast.pipelines.export.avatar import (
    RANDOM_IDENTITY_CLIP,
    IdentityError,
    MaterialTexture,
    build_avatar,
    compact_indices,
    identity_from,
    random_identity,
)
from facecast.pipelines.export.layout import MeshOptions
from facecast.pipelines.export.obj import export_obj
from facecast.pipelines.export.ply import VERTEX, export_ply
from facecast.recon.model.eyes import PUPIL_MATERIAL, eye_layout
from facecast.recon.model.topology import RegionError, triangulate

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
        expected[:, :3] *= 0.01  # metres by default
        got = np.hstack([loaded.vertices, loaded.visual.uv])
        assert got.shape == expected.shape
        distance, row = cKDTree(expected).query(got)
        assert distance.max() < 1e-6
        # triangles only, ours: each quad split along 0-2
        chosen = avatar.polygons[avatar.face_material == material]
        assert len(loaded.faces) == len(chosen) + int((chosen[:, 3] >= 0).sum())
        loaded_triangles = np.sort(vertex_of_row[row][loaded.faces], axis=1)
        assert np.isin(_keys(loaded_triangles), _keys(np.sort(triangulate(chosen), axis=1))).all()
        # the normals are ours
        normals = avatar.vertex_normals()[vertex_of_row[row]]
        assert (np.einsum("ij,ij->i", loaded.vertex_normals, normals) > 0.999).all()


def _possible_triangles(polygons):
    """Every triangle a reader may cut from the polygons (sorted corner ids)."""
    quads = polygons[polygons[:, 3] >= 0]
    options = [polygons[polygons[:, 3] < 0][:, :3]] + [quads[:, list(c)] for c in
                                                       ((0, 1, 2), (0, 2, 3), (0, 1, 3), (1, 2, 3))]
    return np.sort(np.concatenate(options), axis=1)


def _keys(triangles):
    triangles = triangles.astype(np.int64)
    return (triangles[:, 0] * 1_000_003 + triangles[:, 1]) * 1_000_003 + triangles[:, 2]


def test_obj_text_triangles_by_default_and_quads_in_cm_on_request(avatar):
    files = export_bytes(avatar, "obj", stem="head")
    assert list(files) == ["head.mtl", "head.obj"]
    lines = files["head.obj"].decode().splitlines()
    assert "mtllib head.mtl" in lines and "units m" in lines[0]
    faces = [line.split() for line in lines if line.startswith("f ")]
    assert len(faces) == avatar.n_polygons + int(avatar.is_quad.sum()) and {len(f) for f in faces} == {4}
    assert sum(line.startswith("vn ") for line in lines) == avatar.n_vertices
    first_v = np.array([line.split()[1:] for line in lines if line.startswith("v ")][:3], dtype=float)
    np.testing.assert_allclose(first_v, avatar.vertices[:3] * 0.01, atol=1e-7)

    lines = export_obj(avatar, "head.mtl", MeshOptions(units="cm", quads=True)).decode().splitlines()
    faces = [line.split() for line in lines if line.startswith("f ")]
    assert len(faces) == avatar.n_polygons
    assert sum(len(f) == 5 for f in faces) == int(avatar.is_quad.sum())
    assert sum(line.startswith("v ") for line in lines) == avatar.n_vertices
    assert sum(line.startswith("vt ") for line in lines) == len(avatar.uvs)
    used = [line.split()[1] for line in lines if line.startswith("usemtl ")]
    assert used == list(avatar.material_names)
    mtl = files["head.mtl"].decode()
    assert [line.split()[1] for line in mtl.splitlines() if line.startswith("newmtl")] == used
    # the first polygon of the first material, 1-based v/vt/vn
    first = avatar.polygons[avatar.face_material == 0][0]
    first_uv = avatar.face_uvs[avatar.face_material == 0][0]
    expected = [f"{v + 1}/{t + 1}/{v + 1}" for v, t in zip(first, first_uv, strict=True) if v >= 0]
    assert faces[0][1:] == expected
    first_v = np.array([line.split()[1:] for line in lines if line.startswith("v ")][:3], dtype=float)
    np.testing.assert_allclose(first_v, avatar.vertices[:3], atol=1e-4)
    with pytest.raises(ValueError, match="units must be one of m, cm, mm"):
        MeshOptions(units="inch")


# --- PLY ------------------------------------------------------------------------------------

def _ply_records(data: bytes):
    """(vertex records, polygons as lists) of one of our binary PLYs."""
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    count = int(data[:header_end].split(b"element vertex ")[1].split()[0])
    records = np.frombuffer(data, VERTEX, count, header_end)
    cursor, faces = header_end + records.nbytes, []
    while cursor < len(data):
        n = data[cursor]
        faces.append(np.frombuffer(data, "<i4", n, cursor + 1).tolist())
        cursor += 1 + 4 * n
    assert cursor == len(data)
    return records, faces


def test_ply_binary_layout_splits_uv_seams(avatar):
    data = export_bytes(avatar, ".ply")["avatar.ply"]
    assert b"format binary_little_endian 1.0" in data[:200] and b"units m" in data[:200]
    records, faces = _ply_records(data)
    # one vertex per (position, uv) pair of the triangles, each carrying its position's data
    triangles, triangle_uvs = triangulate(avatar.polygons), triangulate(avatar.face_uvs)
    pairs = np.unique(triangles * len(avatar.uvs) + triangle_uvs)
    assert len(records) == len(pairs) > avatar.n_vertices
    assert len(faces) == len(triangles) and {len(f) for f in faces} == {3}
    position = np.stack([records[a] for a in "xyz"], 1)
    normal = np.stack([records[f"n{a}"] for a in "xyz"], 1)
    uv = np.stack([records["s"], records["t"]], 1)
    corner = np.array(faces)
    np.testing.assert_allclose(position[corner], avatar.vertices[triangles] * 0.01, atol=1e-7)
    np.testing.assert_allclose(uv[corner], avatar.uvs[triangle_uvs], atol=1e-7)
    np.testing.assert_allclose(normal[corner], avatar.vertex_normals()[triangles], atol=1e-6)
    # untextured: each vertex has its material's colour
    material = np.concatenate([avatar.face_material, avatar.face_material[avatar.is_quad]])
    colour = np.stack([records["red"], records["green"], records["blue"]], 1)[corner[:, 0]]
    table = np.round(np.array([avatar.colour(m)[:3] for m in range(len(avatar.material_names))]) * 255)
    assert (np.abs(colour.astype(int) - table[material]) <= 1).mean() > 0.99  # border vertices take one side


def test_ply_colours_come_from_the_texture(face_avatar):
    import io

    from PIL import Image

    gradient = np.zeros((64, 64, 3), dtype=np.uint8)
    gradient[..., 0] = np.arange(64)[None, :] * 4  # red grows with u
    gradient[..., 1] = np.arange(64)[:, None] * 4  # green grows downwards (v falls)
    png = io.BytesIO()
    Image.fromarray(gradient).save(png, format="PNG")
    textured = replace(face_avatar, textures=(MaterialTexture(face_avatar.material_names[0], png.getvalue()),))
    records, _ = _ply_records(export_ply(textured))
    uv = np.stack([records["s"], records["t"]], 1) % 1.0
    np.testing.assert_allclose(records["red"], np.clip((uv[:, 0] * 64).astype(int), 0, 63) * 4)
    np.testing.assert_allclose(records["green"], np.clip(((1 - uv[:, 1]) * 64).astype(int), 0, 63) * 4)


def test_ply_with_quads_in_mm(face_avatar):
    records, faces = _ply_records(export_ply(face_avatar, MeshOptions(units="mm", quads=True)))
    assert len(faces) == face_avatar.n_polygons and {len(f) for f in faces} == {4}
    position = np.stack([records[a] for a in "xyz"], 1)
    np.testing.assert_allclose(np.ptp(position, 0), np.ptp(face_avatar.vertices, 0) * 10, rtol=1e-5)


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
