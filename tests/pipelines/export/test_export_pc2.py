"""PC2 point caches: byte layout, round trip, streaming writer, crash safety, Blender import."""

from __future__ import annotations

import gc
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from facecast.pipelines.export.pc2 import HEADER_SIZE, Pc2Writer, export_pc2, read_pc2


def _frames(samples: int = 5, points: int = 7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(scale=10.0, size=(samples, points, 3)).astype(np.float32)


def test_header_fields_and_layout():
    frames = _frames()
    data = export_pc2(frames, start_frame=12.0, sample_rate=0.5)
    magic, version, points, start, rate, samples = struct.unpack_from("<12siiffi", data)
    assert (magic, version, points, start, rate, samples) == (b"POINTCACHE2\0", 1, 7, 12.0, 0.5, 5)
    assert len(data) == 32 + 5 * 7 * 3 * 4 == HEADER_SIZE + frames.nbytes
    # sample 2, point 4 sits at the offset the format defines
    offset = 32 + (2 * 7 + 4) * 12
    assert struct.unpack_from("<3f", data, offset) == tuple(frames[2, 4].tolist())


def test_round_trip_values_and_header():
    frames = _frames(samples=4, points=11, seed=1)
    cache = read_pc2(export_pc2(frames, start_frame=-3.0, sample_rate=2.0))
    assert cache.frames.dtype == np.float32
    np.testing.assert_array_equal(cache.frames, frames)
    assert (cache.start_frame, cache.sample_rate, cache.version) == (-3.0, 2.0, 1)
    assert (cache.num_samples, cache.num_points) == (4, 11)


def test_float64_input_is_rounded_to_float32():
    frames = _frames().astype(np.float64) + 1e-9
    cache = read_pc2(export_pc2(frames))
    np.testing.assert_allclose(cache.frames, frames, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 2), (2, 3, 4, 3)])
def test_export_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match=r"\(T, N, 3\)"):
        export_pc2(np.zeros(shape))


def test_export_rejects_non_finite_and_bad_rate():
    frames = _frames()
    frames[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        export_pc2(frames)
    with pytest.raises(ValueError, match="sample rate"):
        export_pc2(_frames(), sample_rate=0.0)


def test_read_rejects_bad_magic_and_size():
    data = export_pc2(_frames())
    with pytest.raises(ValueError, match="magic"):
        read_pc2(b"POINTCACHE3\0" + data[12:])
    with pytest.raises(ValueError, match="bytes"):
        read_pc2(data[:-4])
    with pytest.raises(ValueError, match="header"):
        read_pc2(data[:20])


def test_streaming_writer_equals_one_shot(tmp_path):
    frames = _frames(samples=6, points=9, seed=2)
    path = tmp_path / "take.pc2"
    with Pc2Writer(path, num_points=9, start_frame=1.0, sample_rate=1.0) as writer:
        writer.append(frames[0])           # one (N, 3) frame
        writer.append(frames[1:4])         # a (K, N, 3) block
        assert not path.exists()           # nothing published before close
        for frame in frames[4:]:
            writer.append(frame)
        assert writer.num_samples == 6
    assert path.read_bytes() == export_pc2(frames, start_frame=1.0, sample_rate=1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.pc2"]


def test_writer_replaces_existing_file_only_on_close(tmp_path):
    path = tmp_path / "take.pc2"
    path.write_bytes(b"old")
    writer = Pc2Writer(path, num_points=7)
    writer.append(_frames()[0])
    assert path.read_bytes() == b"old"
    writer.close()
    assert read_pc2(path.read_bytes()).num_samples == 1


def test_writer_exception_leaves_nothing(tmp_path):
    frames = _frames()
    with pytest.raises(RuntimeError, match="tracking failed"):
        with Pc2Writer(tmp_path / "take.pc2", num_points=7) as writer:
            writer.append(frames[:3])
            raise RuntimeError("tracking failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_wrong_point_count_and_closed_state(tmp_path):
    writer = Pc2Writer(tmp_path / "take.pc2", num_points=7)
    with pytest.raises(ValueError, match="8 points"):
        writer.append(np.zeros((8, 3)))
    writer.abort()
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.append(np.zeros((7, 3)))
    assert list(tmp_path.iterdir()) == []


def test_abandoned_writer_leaves_nothing(tmp_path):
    writer = Pc2Writer(tmp_path / "take.pc2", num_points=7)
    writer.append(_frames()[0])
    del writer
    gc.collect()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="unnamed temp files need Linux O_TMPFILE")
def test_killed_writer_leaves_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from facecast.pipelines.export.pc2 import Pc2Writer
        writer = Pc2Writer({str(tmp_path / "take.pc2")!r}, num_points=100)
        for _ in range(10):
            writer.append(np.ones((100, 3)))
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9 and "written" in result.stdout
    assert list(tmp_path.iterdir()) == []


_BLENDER_SCRIPT = """
import bpy, json
obj_path, pc2_path, frame = {obj!r}, {pc2!r}, {frame}
verts, faces = [], []
for line in open(obj_path):
    parts = line.split()
    if parts and parts[0] == "v":
        verts.append(tuple(float(v) for v in parts[1:4]))
    elif parts and parts[0] == "f":
        faces.append(tuple(int(p.split("/")[0]) - 1 for p in parts[1:]))
mesh = bpy.data.meshes.new("head")
mesh.from_pydata(verts, [], faces)
obj = bpy.data.objects.new("head", mesh)
bpy.context.scene.collection.objects.link(obj)
mod = obj.modifiers.new("cache", "MESH_CACHE")
mod.cache_format = "PC2"
mod.filepath = pc2_path
bpy.context.scene.frame_set(frame)
evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
result = evaluated.to_mesh()
print("FACECAST_VERTS " + json.dumps([list(v.co) for v in result.vertices]))
"""


@pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not on PATH")
def test_blender_mesh_cache_plays_pc2(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    base = trimesh.creation.icosphere(subdivisions=1, radius=10.0)
    rng = np.random.default_rng(3)
    frames = (base.vertices[None] + rng.normal(scale=2.0, size=(6,) + base.vertices.shape)).astype(np.float32)
    obj_path, pc2_path = tmp_path / "head.obj", tmp_path / "head.pc2"
    trimesh.Trimesh(base.vertices, base.faces, process=False).export(obj_path)
    pc2_path.write_bytes(export_pc2(frames))
    frame = 3
    script = _BLENDER_SCRIPT.format(obj=str(obj_path), pc2=str(pc2_path), frame=frame)
    result = subprocess.run(["blender", "-b", "--factory-startup", "--python-expr", script],
                            capture_output=True, text=True, timeout=180)
    lines = [line for line in result.stdout.splitlines() if line.startswith("FACECAST_VERTS ")]
    assert lines, f"blender printed no vertices:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    played = np.asarray(json.loads(lines[0].split(" ", 1)[1]))
    assert played.shape == frames[frame].shape
    np.testing.assert_allclose(played, frames[frame], atol=1e-4)
    assert np.abs(played - frames[frame - 1]).max() > 0.1  # not the neighbouring sample
