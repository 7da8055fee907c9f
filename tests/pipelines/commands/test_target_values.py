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
