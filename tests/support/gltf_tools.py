"""Test helpers for glTF files: a third-party-style ARKit GLB, accessor decoding,
gltf-validator and Blender runs (skipping when the tools are not installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pygltflib as gl
import pytest

from facecast.recon.model.arkit import ARKIT_52

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = REPO / ".ci" / "node" / "node_modules" / "gltf-validator"
BLENDER_PYTHONPATH = REPO / ".ci" / "blender-py"
COMPONENTS = {5126: "<f4", 5123: "<u2", 5125: "<u4", 5121: "u1", 5122: "<i2", 5120: "i1"}
WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
HEAD_ROTATION = (0.0, np.sin(np.radians(5)), 0.0, np.cos(np.radians(5)))   # 10 degrees about y

VALIDATE_JS = """
const fs = require('fs');
const validator = require(process.argv[1]);
Promise.all(process.argv.slice(2).map(f => validator.validateBytes(
    new Uint8Array(fs.readFileSync(f)), {maxIssues: 100}))).then(reports => {
  console.log(JSON.stringify(reports.map(r => r.issues)));
}, error => { console.error(String(error)); process.exit(1); });
"""


def arkit_sphere_glb(prefix: str = "blendShape1.", extra: tuple[str, ...] = ("customWrinkle",)) -> bytes:
    """A GLB "made by another tool": an icosphere head with 52 ARKit-named morph targets
    (``prefix + name``, plus ``extra`` names) under a rotated ``Head`` node, a ``Hat`` mesh
    without targets, a material and an unrelated root node."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=1, radius=0.1)
    vertices = np.asarray(sphere.vertices, dtype=np.float32)
    faces = np.asarray(sphere.faces, dtype=np.uint16).ravel()
    names = [prefix + n for n in ARKIT_52] + list(extra)
    rng = np.random.default_rng(3)
    deltas = [(vertices * rng.uniform(0.01, 0.2) * (rng.random((len(vertices), 1)) < 0.4)).astype(np.float32)
              for _ in names]
    hat = np.array([[0, 0.12, 0], [0.05, 0.1, 0], [0, 0.1, 0.05]], dtype=np.float32)
    arrays = [vertices, faces, *deltas, hat, np.array([0, 1, 2], dtype=np.uint16)]
    gltf = gl.GLTF2(asset=gl.Asset(generator="some other tool", version="2.0"))
    blob = b""
    for array in arrays:
        gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(blob), byteLength=array.nbytes))
        kind = gl.VEC3 if array.ndim == 2 else gl.SCALAR
        accessor = gl.Accessor(bufferView=len(gltf.bufferViews) - 1, count=len(array), type=kind,
                               componentType=gl.FLOAT if array.dtype == np.float32 else gl.UNSIGNED_SHORT)
        if kind == gl.VEC3:
            accessor.min, accessor.max = array.min(0).tolist(), array.max(0).tolist()
        gltf.accessors.append(accessor)
        blob += array.tobytes() + b"\0" * (-array.nbytes % 4)
    face = gl.Primitive(attributes=gl.Attributes(POSITION=0), indices=1, material=0,
                        targets=[{"POSITION": 2 + k} for k in range(len(names))])
    gltf.meshes = [gl.Mesh(name="Face", primitives=[face], weights=[0.0] * len(names),
                           extras={"targetNames": names}),
                   gl.Mesh(name="Hat", primitives=[gl.Primitive(attributes=gl.Attributes(POSITION=len(arrays) - 2),
                                                                indices=len(arrays) - 1, material=0)])]
    gltf.materials = [gl.Material(name="Skin", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[0.8, 0.6, 0.5, 1.0], metallicFactor=0.0))]
    gltf.nodes = [gl.Node(name="Root", children=[1, 2], translation=[0.0, 1.0, 0.0]),
                  gl.Node(name="Head", mesh=0, translation=[0.0, 0.5, 0.0], rotation=list(HEAD_ROTATION)),
                  gl.Node(name="Hat", mesh=1)]
    gltf.scenes = [gl.Scene(nodes=[0])]
    gltf.scene = 0
    gltf.buffers = [gl.Buffer(byteLength=len(blob))]
    gltf.set_binary_blob(blob)
    return b"".join(gltf.save_to_bytes())


def read_accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    """A dense accessor of a GLB's buffer 0 as ``(count, width)`` (no sparse), in its component type;
    interleaved views (``byteStride``) are read row by row."""
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    width = WIDTH[accessor["type"]]
    dtype = np.dtype(COMPONENTS[accessor["componentType"]])
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    stride = view.get("byteStride", width * dtype.itemsize)
    rows = np.frombuffer(binary, np.uint8, (accessor["count"] - 1) * stride + width * dtype.itemsize, start)
    rows = np.lib.stride_tricks.as_strided(rows, (accessor["count"], width * dtype.itemsize), (stride, 1))
    return np.ascontiguousarray(rows).view(dtype).reshape(accessor["count"], width)


def read_values(document: dict, binary: bytes, index: int) -> np.ndarray:
    """:func:`read_accessor` as float64, normalised integers mapped to [-1, 1] / [0, 1] as glTF says."""
    accessor = document["accessors"][index]
    data = read_accessor(document, binary, index)
    if accessor.get("normalized"):
        return np.maximum(data / np.iinfo(data.dtype).max, -1.0)
    return data.astype(np.float64)


def validate(paths: list[Path]) -> list[dict]:
    """gltf-validator issues (``numErrors``, ``numWarnings``, ``messages``) per file."""
    node = shutil.which("node")
    if node is None or not VALIDATOR.is_dir():
        pytest.skip("gltf-validator not installed (npm install --prefix .ci/node gltf-validator)")
    run = subprocess.run([node, "-e", VALIDATE_JS, str(VALIDATOR), *map(str, paths)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def run_blender(script: str, args: list[str], timeout: float = 300) -> dict:
    """Run ``script`` (Python source) in background Blender with ``args`` after ``--``; returns
    the JSON it prints on a line starting with ``FACECAST_RESULT ``."""
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("blender not installed")
    env = dict(os.environ)
    if BLENDER_PYTHONPATH.is_dir():               # Blender's glTF importer needs numpy
        env["PYTHONPATH"] = str(BLENDER_PYTHONPATH)
    run = subprocess.run([blender, "-b", "--factory-startup", "--python-exit-code", "1",
                          "--python-expr", script, "--", *args],
                         capture_output=True, text=True, timeout=timeout, env=env)
    if "No module named 'numpy'" in run.stdout + run.stderr:
        pytest.skip("Blender's Python has no numpy (pip install --target .ci/blender-py 'numpy>=2')")
    lines = [line for line in run.stdout.splitlines() if line.startswith("FACECAST_RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("FACECAST_RESULT "))


GLTF_TRANSFORM = REPO / ".ci" / "node" / "node_modules" / "@gltf-transform" / "cli" / "bin" / "cli.js"


def compress_glb(data: bytes, method: str, folder: Path) -> bytes:
    """``data`` compressed by gltf-transform (``method``: ``meshopt``, which also quantises as
    gltfpack does, or ``draco``), the tool web and face-capture pipelines use."""
    node = shutil.which("node")
    if node is None or not GLTF_TRANSFORM.is_file():
        pytest.skip("gltf-transform not installed (npm install --prefix .ci/node @gltf-transform/cli)")
    source, target = folder / "plain.glb", folder / f"{method}.glb"
    source.write_bytes(data)
    run = subprocess.run([node, str(GLTF_TRANSFORM), method, str(source), str(target)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return target.read_bytes()


def _trs(translation, rotation, scale) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(rotation).as_matrix() * np.asarray(scale)
    out[:3, 3] = translation
    return out


def world_matrices(document: dict, binary: bytes, keyframe: int) -> dict[str, np.ndarray]:
    """``{node name: (4, 4) world matrix}`` at keyframe ``keyframe`` of the file's first animation
    (translation / rotation / scale channels read from the file; other nodes at rest)."""
    nodes = document["nodes"]
    local = {k: (np.asarray(n.get("translation", [0, 0, 0]), float), np.asarray(n.get("rotation", [0, 0, 0, 1]),
                 float), np.asarray(n.get("scale", [1, 1, 1]), float)) for k, n in enumerate(nodes)}
    animation = document["animations"][0]
    for channel in animation["channels"]:
        path, node = channel["target"]["path"], channel["target"]["node"]
        if path in ("translation", "rotation", "scale"):
            values = read_values(document, binary, animation["samplers"][channel["sampler"]]["output"])
            parts = list(local[node])
            parts[("translation", "rotation", "scale").index(path)] = values[keyframe]
            local[node] = tuple(parts)
    parents = {child: k for k, n in enumerate(nodes) for child in n.get("children", [])}
    out = {}
    for k, node in enumerate(nodes):
        matrix, current = _trs(*local[k]), parents.get(k)
        while current is not None:
            matrix = _trs(*local[current]) @ matrix
            current = parents.get(current)
        out[node.get("name", str(k))] = matrix
    return out


def mesh_centre(document: dict, node_name: str) -> np.ndarray:
    """``(4,)`` the homogeneous centre of the POSITION bounds of the mesh a named node holds, in the
    node's frame (normalised integer bounds mapped as glTF says)."""
    node = next(n for n in document["nodes"] if n.get("name") == node_name)
    accessor = document["accessors"][document["meshes"][node["mesh"]]["primitives"][0]["attributes"]["POSITION"]]
    low, high = np.asarray(accessor["min"], float), np.asarray(accessor["max"], float)
    if accessor.get("normalized"):
        scale = np.iinfo(np.dtype(COMPONENTS[accessor["componentType"]])).max
        low, high = np.maximum(low / scale, -1), np.maximum(high / scale, -1)
    return np.append((low + high) / 2, 1.0)
