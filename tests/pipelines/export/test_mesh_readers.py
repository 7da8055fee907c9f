"""Our OBJ, PLY and GLB read back by trimesh, Open3D and Blender: the same triangles and the same size
in metres in every reader (issue #16; Blender runs when it is installed)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gltf_tools import run_blender

from facecast.pipelines.export import write_mesh
from facecast.pipelines.export.avatar import build_avatar, random_identity
from facecast.recon.model.topology import triangulate

FORMATS = ("obj", "ply", "glb")

BLENDER_SCRIPT = r"""
import bpy, json, sys
path = sys.argv[sys.argv.index("--") + 1]
bpy.ops.wm.read_factory_settings(use_empty=True)
if path.endswith(".obj"):
    bpy.ops.wm.obj_import(filepath=path)
elif path.endswith(".ply"):
    bpy.ops.import_mesh.ply(filepath=path)
else:
    bpy.ops.import_scene.gltf(filepath=path)
vertices, triangles, corners = 0, 0, []
for obj in bpy.context.scene.objects:
    if obj.type != "MESH":
        continue
    mesh = obj.data
    mesh.calc_loop_triangles()
    vertices += len(mesh.vertices)
    triangles += len(mesh.loop_triangles)
    corners += [list(obj.matrix_world @ v.co) for v in mesh.vertices]
low = [min(c[k] for c in corners) for k in range(3)]
high = [max(c[k] for c in corners) for k in range(3)]
print("FACECAST_RESULT " + json.dumps({"vertices": vertices, "triangles": triangles,
                                       "extent": [h - l for h, l in zip(high, low)]}))
"""


@pytest.fixture(scope="module")
def avatar(model):
    return build_avatar(model, random_identity(seed=3))


@pytest.fixture(scope="module")
def files(avatar, tmp_path_factory):
    folder = tmp_path_factory.mktemp("readers")
    return {fmt: write_mesh(avatar, folder / f"head.{fmt}")[-1] for fmt in FORMATS}


def _expected(avatar):
    """Triangles and the size of the bounding box in metres, sorted (readers may turn y-up to z-up)."""
    return len(triangulate(avatar.polygons)), np.sort(np.ptp(avatar.vertices, 0) * 0.01)


def _trimesh(path):
    import trimesh

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mesh = trimesh.load(path, force="mesh", process=False)
    return len(mesh.vertices), len(mesh.faces), np.ptp(mesh.vertices, 0)


def _open3d(path):
    o3d = pytest.importorskip("open3d")
    mesh = o3d.io.read_triangle_mesh(str(path))
    vertices = np.asarray(mesh.vertices)
    assert len(vertices), f"Open3D read nothing from {path.name}"
    assert mesh.has_vertex_normals()
    return len(vertices), len(mesh.triangles), np.ptp(vertices, 0)


def _blender(path):
    result = run_blender(BLENDER_SCRIPT, [str(path)])
    return result["vertices"], result["triangles"], np.array(result["extent"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("reader", [_trimesh, _open3d, _blender], ids=["trimesh", "open3d", "blender"])
def test_every_reader_reads_the_same_triangles_in_metres(avatar, files, fmt, reader):
    triangles, extent = _expected(avatar)
    n_vertices, n_triangles, size = reader(files[fmt])
    assert n_triangles == triangles
    np.testing.assert_allclose(np.sort(size), extent, atol=1e-5)  # metres: a ~0.3 m head, not 30 m
    # vertices, by what each format means by one: the PLY's own (one per position and UV) in every
    # reader; OBJ and GLB readers split positions by UV and material (Blender's OBJ importer keeps the
    # positions), and assimp (Open3D) also joins vertices equal in position, normal and UV
    split = _split_counts(avatar)
    expected = {"ply": split["uv"], "obj": split["uv_material"], "glb": split["uv_material"]}[fmt]
    if reader is _blender and fmt == "obj":
        expected = avatar.n_vertices
    if reader is _open3d and fmt != "ply":
        assert 0.99 * expected < n_vertices <= expected
    else:
        assert n_vertices == expected


def _split_counts(avatar):
    triangles, uvs = triangulate(avatar.polygons), triangulate(avatar.face_uvs)
    material = np.concatenate([avatar.face_material, avatar.face_material[avatar.is_quad]])
    pairs = triangles * len(avatar.uvs) + uvs
    return {"uv": len(np.unique(pairs)),
            "uv_material": len(np.unique(pairs * len(avatar.material_names) + material[:, None]))}
