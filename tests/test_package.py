"""The import package: a short Python API, public names where users look, no work at import time."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import version

import pytest

import facecast

PACKAGES = ["facecast.recon", "facecast.recon.model", "facecast.recon.landmarks", "facecast.recon.fit",
            "facecast.recon.learn"]


def test_import_facecast_loads_neither_torch_nor_mediapipe():
    code = ("import sys, facecast, facecast.recon, facecast.pipelines, facecast.transfer, facecast.render; "
            "print(sorted(m for m in ('torch', 'mediapipe', 'cv2', 'av') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_is_the_installed_distribution():
    assert facecast.__version__ == version("facecast")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_to_its_defining_module(package):
    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        value = getattr(module, name)
        defining = importlib.import_module(module.__getattr__.home[name])
        assert getattr(defining, name) is value
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        module.NotAName  # noqa: B018


def test_top_level_functions_are_the_api_and_transfer_stays_a_package():
    from facecast.pipelines import api

    assert facecast.reconstruct is api.reconstruct and facecast.track is api.track
    retarget = importlib.import_module("facecast.transfer.retarget")  # the sub-package imports as usual
    assert callable(facecast.transfer) and facecast.transfer.retarget is retarget
    with pytest.raises(AttributeError):
        facecast.no_such_function  # noqa: B018


def test_reconstruct_from_python_writes_the_avatar(tmp_path):
    written = facecast.reconstruct(None, tmp_path / "astronaut.glb", mode="fast", texture=False, preview=False)
    assert sorted(p.name for p in written) == ["astronaut.glb", "astronaut.json"]
    record = json.loads((tmp_path / "astronaut.json").read_text())
    assert len(record["arkit"]) == 52 and len(record["identity"]) == 100
    assert (tmp_path / "astronaut.glb").read_bytes()[:4] == b"glTF"


def test_transfer_called_as_a_function_reports_a_bad_target(tmp_path, shared_dir):
    from facecast.pipelines.errors import is_user_error

    target = tmp_path / "target.glb"
    target.write_bytes(b"not a glb")
    with pytest.raises(Exception) as info:
        facecast.transfer(shared_dir / "media" / "videos" / "talk1.mp4", target, tmp_path / "out.glb")
    assert is_user_error(info.value) and "target.glb" in str(info.value)
    assert list(tmp_path.iterdir()) == [target]
