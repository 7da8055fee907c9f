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
COMPONENTS = {5126: "<f4", 5123: "<u2", 5125: "<u4", 5121: "u1"}
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
    """A dense accessor of a GLB's buffer 0 as ``(count, width)`` (no sparse, no stride)."""
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    width = WIDTH[accessor["type"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    data = np.frombuffer(binary, COMPONENTS[accessor["componentType"]], accessor["count"] * width, start)
    return data.reshape(accessor["count"], width)


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
