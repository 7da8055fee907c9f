"""``facecast train``: config -> progress lines, checkpoint, weights; resume; user errors (one line, exit 2)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from facecast.pipelines.cli import app
from facecast.pipelines.errors import USER_ERROR_EXIT

runner = CliRunner()
TINY = {"crop_size": 32, "widths": [8, 16, 24], "blocks": [1, 1], "features": 32, "landmark_hidden": 64}


def _config(tmp_path, **changes) -> str:
    data = {"steps": 4, "batch": 2, "log_every": 2, "regressor": {**TINY, "image_branch": False}, **changes}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(data))
    return str(path)


def _user_error(result, fragment: str) -> None:
    assert result.exit_code == USER_ERROR_EXIT, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_train_writes_weights_with_metadata_and_resumes(tmp_path, model):
    from facecast.recon.learn.regressor import load_regressor, read_metadata

    out = tmp_path / "w.safetensors"
    config = _config(tmp_path)
    result = runner.invoke(app, ["train", "--config", config, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "step 2/4" in result.stdout and "step 4/4" in result.stdout and "critic" in result.stdout
    assert (tmp_path / "w.ckpt").is_file()
    regressor = load_regressor(out)
    assert regressor.config.crop_size == 32 and not regressor.config.image_branch
    meta = read_metadata(out)
    assert json.loads(meta["train_config"])["steps"] == 4 and "synthetic ICT" in meta["trained_on"]
    _user_error(runner.invoke(app, ["train", "--config", config, "-o", str(out)]), "pass --resume")
    again = runner.invoke(app, ["train", "--config", config, "-o", str(out), "--resume"])
    assert again.exit_code == 0 and "resumed from" in again.stdout and "trained 4 steps" in again.stdout


def test_train_with_crops_reads_the_texture_file(tmp_path, model):
    from PIL import Image

    texture = tmp_path / "texture.png"
    Image.fromarray(np.full((512, 512, 3), 180, np.uint8)).save(texture)
    config = _config(tmp_path, steps=2, pool_size=2, texture=str(texture), regressor=TINY)
    out = tmp_path / "w.safetensors"
    result = runner.invoke(app, ["train", "--config", config, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    from facecast.recon.learn.regressor import read_metadata

    assert str(texture) in read_metadata(out)["trained_on"]


def test_train_user_errors(tmp_path):
    out = str(tmp_path / "w.safetensors")
    _user_error(runner.invoke(app, ["train", "--config", _config(tmp_path, stepz=3), "-o", out]),
                "unknown key(s) ['stepz']")
    _user_error(runner.invoke(app, ["train", "--config", str(tmp_path / "none.json"), "-o", out]), "does not exist")
    _user_error(runner.invoke(app, ["train", "--config", _config(tmp_path), "-o", str(tmp_path / "w.pt")]),
                ".safetensors")
    small = tmp_path / "small.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(small)
    config = _config(tmp_path, texture=str(small), regressor=TINY)
    _user_error(runner.invoke(app, ["train", "--config", config, "-o", out]), "at least 512 px")
