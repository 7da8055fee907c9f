"""Targets with implausible node transforms or an old / cut GLB container (issue #18: tracebacks or messages
without the file): each is one user error naming the file and the problem, before any driver is tracked."""

from __future__ import annotations

import copy
import struct
import time
import warnings

import pytest
from gltf_tools import arkit_sphere_glb
from typer.testing import CliRunner

from facecast.pipelines.cli import app
from facecast.pipelines.commands.transfer import load_target
from facecast.pipelines.errors import UserError
from facecast.transfer.glb import GlbChunks, read_glb, write_glb


def _with_nodes(**values) -> bytes:
    base = read_glb(arkit_sphere_glb())
    document = copy.deepcopy(base.document)
    for node in document["nodes"]:
        node.update(values)
    return write_glb(GlbChunks(document, base.binary))


def _with_extension(value) -> bytes:
    base = read_glb(arkit_sphere_glb())
    return write_glb(GlbChunks({**base.document, "extensions": {"VRM": value}}, base.binary))


def _cut(data: bytes, size: int) -> bytes:
    return data[:size]


@pytest.mark.parametrize("make, fragments", [
    (lambda: _with_nodes(rotation=[0, 0, 0, 0]), ("rotation [0.0, 0.0, 0.0, 0.0] is not a unit quaternion",)),
    (lambda: _with_nodes(rotation=[float("nan"), 0, 0, 1]), ("rotation must be 4 finite numbers", "nan")),
    (lambda: _with_nodes(rotation=[0, 0, 1]), ("rotation must be 4 finite numbers",)),
    (lambda: _with_nodes(rotation="x"), ("rotation must be 4 finite numbers",)),
    (lambda: _with_nodes(translation=[0, 1e308, 0]), ("translation must be 3 finite numbers",)),
    (lambda: _with_nodes(scale=[0, 0, 0]), ("scale [0.0, 0.0, 0.0] collapses space",)),
    (lambda: _with_nodes(matrix=[1.0] * 15), ("matrix must be 16 finite numbers",)),
    (lambda: arkit_sphere_glb()[:4] + struct.pack("<I", 1) + arkit_sphere_glb()[8:], ("version 1 (glTF 1.0)",)),
    (lambda: arkit_sphere_glb()[:-10], ("truncated GLB: its header declares",)),
    (lambda: _cut(arkit_sphere_glb(), 2000), ("truncated GLB",)),
    (lambda: _with_extension("x"), ("its VRM extension must be an object, got 'x'",)),
])
def test_a_target_with_bad_values_is_one_error_naming_it(model, tmp_path, make, fragments):
    target = tmp_path / "target.glb"
    target.write_bytes(make())
    with warnings.catch_warnings(), pytest.raises(UserError) as info:
        warnings.simplefilter("ignore")
        load_target(target, model)
    message = str(info.value)
    assert str(target) in message and message.count(str(target)) == 1, message
    for fragment in fragments:
        assert fragment in message, message


def test_the_command_refuses_it_before_tracking(shared_dir, tmp_path):
    target = tmp_path / "target.glb"
    target.write_bytes(_with_nodes(rotation=[0, 0, 0, 0]))
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["transfer", "--driver", str(shared_dir / "media/videos/talk1.mp4"),
                                      "--target", str(target), "-o", str(tmp_path / "out.glb")])
    assert result.exit_code == 2 and "not a unit quaternion" in result.stderr, result.output
    assert time.perf_counter() - start < 20 and not (tmp_path / "out.glb").exists()


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d.__setitem__("meshes", [1, 2]), "meshes[0] must be an object, got 1"),
    (lambda d: d["nodes"][0].__setitem__("mesh", "head"), "nodes[0].mesh must be an index into meshes"),
    (lambda d: d["nodes"][0].__setitem__("children", [99]), "nodes[0].children[0] must be an index into nodes"),
    (lambda d: d["meshes"][0]["primitives"][0]["attributes"].__setitem__("POSITION", 10**6),
     "meshes[0].primitives[0].attributes.POSITION must be an index into accessors"),
    (lambda d: d["accessors"][0].__setitem__("bufferView", -1), "accessors[0].bufferView must be an index"),
    (lambda d: d.__setitem__("scene", "a"), "'scene' must be an index into scenes"),
])
def test_a_malformed_document_names_the_member(model, tmp_path, edit, fragment):
    """Issue #18: wrong JSON types in targets gave Python errors ('int' object has no attribute 'get')."""
    base = read_glb(arkit_sphere_glb())
    document = copy.deepcopy(base.document)
    edit(document)
    target = tmp_path / "target.glb"
    target.write_bytes(write_glb(GlbChunks(document, base.binary)))
    with pytest.raises(UserError) as info:
        load_target(target, model)
    assert f"{target}: malformed glTF: {fragment}" in str(info.value), info.value
