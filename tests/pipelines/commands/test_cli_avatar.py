"""``facecast avatar``: outputs, help, and the user-error convention (one line, exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import typer
from typer.testing import CliRunner

from facecast.pipelines.cli import app
from facecast.pipelines.errors import USER_ERROR_EXIT, UserError, is_user_error, user_errors
from facecast.recon.model.topology import REGION_STARTS, RegionError

runner = CliRunner()
FACECAST = Path(sys.executable).with_name("facecast")


def _assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == USER_ERROR_EXIT, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def test_avatar_glb_random_prints_a_seed_that_repeats_it(tmp_path, model):
    from facecast.pipelines.export.avatar import build_avatar, random_identity

    out = tmp_path / "head.glb"
    result = runner.invoke(app, ["avatar", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "52 blendshapes as morph targets (arkit names)" in result.stdout
    seed = int(result.stdout.split("pass --seed ")[1].split()[0])
    gltf = pygltflib.GLTF2.load_from_bytes(out.read_bytes())
    assert len(gltf.meshes[0].extras["targetNames"]) == 52
    assert [m.name for m in gltf.materials][:2] == ["M_Face", "M_BackHead"]
    expected = build_avatar(model, random_identity(seed))
    # the skin primitive's bounds are those of the skin vertices of that identity
    accessor = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION]
    skin = expected.vertices[np.unique(expected.polygons[expected.face_material == 0])] / 100
    np.testing.assert_allclose(accessor.min, skin.min(axis=0), atol=1e-7)
    np.testing.assert_allclose(accessor.max, skin.max(axis=0), atol=1e-7)


def test_avatar_obj_from_identity_file_via_console_script(tmp_path, model):
    if not FACECAST.exists():
        pytest.skip("console script not installed")
    weights = np.linspace(-1, 1, 100)
    (tmp_path / "id.json").write_text(json.dumps({"identity": weights.tolist()}))
    run = subprocess.run([str(FACECAST), "avatar", "-o", str(tmp_path / "face.obj"),
                          "--identity", str(tmp_path / "id.json"), "--regions", "face", "--units", "cm"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mtl", "face.obj", "id.json"]
    lines = (tmp_path / "face.obj").read_text().splitlines()
    vertices = np.array([line.split()[1:] for line in lines if line.startswith("v ")], dtype=float)
    import torch

    with torch.no_grad():
        full = model(torch.as_tensor(weights, dtype=torch.float32)[None], torch.zeros(1, 53)).vertices[0]
    face_ids = np.flatnonzero(model.data.region_vertex_mask(["face"]))
    np.testing.assert_allclose(vertices, full.numpy()[face_ids], atol=1e-5)


def test_help_explains_units_regions_and_glb():
    result = runner.invoke(app, ["avatar", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for word in ("metres", "--units", "--quads", "morph targets", "targetNames", *REGION_STARTS):
        assert word in text, word
    assert "avatar" in runner.invoke(app, ["--help"]).stdout


def test_help_does_not_import_torch():
    code = ("import sys; from facecast.pipelines.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'torch' not in sys.modules and 'pygltflib' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("args, fragments", [
    (["--regions", "face,nose"], ["unknown region 'nose'", "eyelashes"]),
    (["--regions", " , "], ["no region selected"]),
    (["-o", "{tmp}/head.fbx"], [".fbx is not a known format", ".glb, .obj, .ply"]),
    (["-o", "{tmp}/file.txt/head.glb"], ["is a file, not a folder"]),
    (["-o", "{tmp}/file.txt/deeper/head.glb"], ["is a file, not a folder"]),
    (["--identity", "{tmp}/short.json"], ["short.json", "expected 100"]),
    (["--identity", "{tmp}/broken.json"], ["broken.json", "not valid JSON"]),
    (["--identity", "{tmp}/none.json"], ["none.json"]),
    (["--identity", "{tmp}/short.json", "--seed", "1"], ["--seed only applies"]),
    (["--assets", "{tmp}"], ["no ict_facekit_light.npz"]),
])
def test_user_errors_are_one_line_exit_2(tmp_path, args, fragments):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "short.json").write_text(json.dumps({"identity": [0.0] * 10}))
    (tmp_path / "broken.json").write_text("{")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "head.glb")]
    result = runner.invoke(app, ["avatar", *args])
    _assert_user_error(result, *fragments)
    assert not (tmp_path / "head.glb").exists()


def test_missing_assets_offline(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FACECAST_OFFLINE", "1")
    monkeypatch.setenv("FACECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACECAST_ASSETS", str(empty))
    result = runner.invoke(app, ["avatar", "-o", str(tmp_path / "a.glb"), "--seed", "1"])
    _assert_user_error(result, "FACECAST_ASSETS", "holds no")
    monkeypatch.delenv("FACECAST_ASSETS")
    result = runner.invoke(app, ["avatar", "-o", str(tmp_path / "a.glb"), "--seed", "1"])
    _assert_user_error(result, "not cached", "FACECAST_OFFLINE")


def test_console_script_user_error_has_no_traceback(tmp_path):
    if not FACECAST.exists():
        pytest.skip("console script not installed")
    env = dict(os.environ, FACECAST_OFFLINE="1", FACECAST_ASSETS=str(tmp_path),
               FACECAST_HOME=str(tmp_path / "home"))
    run = subprocess.run([str(FACECAST), "avatar", "-o", str(tmp_path / "x.glb"), "--seed", "0"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == USER_ERROR_EXIT
    assert run.stderr.strip().count("\n") == 0 and run.stderr.startswith("error: ")
    assert "Traceback" not in run.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    _assert_user_error(runner.invoke(app, ["avatar", "-o", str(folder / "x.glb")]), "not writable")


def test_error_convention_is_reusable():
    assert is_user_error(UserError("x")) and is_user_error(RegionError("x"))
    assert not is_user_error(ValueError("x")) and not is_user_error(KeyError("x"))
    other = typer.Typer()

    @other.command()
    @user_errors
    def run(fail: str = "user") -> None:
        if fail == "user":
            raise UserError("bad input\nsecond line")
        raise RuntimeError("a bug")

    @other.command()
    def unused() -> None:
        """A second command so that ``run`` keeps its name."""

    result = runner.invoke(other, ["run"])
    _assert_user_error(result, "error: bad input second line")
    result = runner.invoke(other, ["run", "--fail", "bug"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
