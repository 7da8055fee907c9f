"""``facecast pool`` / ``facecast crops``: a real build in a worker process (textures baked from a photo),
resumed after a shard is lost, and the user errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facecast.pipelines.commands.pool import build_pool, collect_crops
from facecast.pipelines.errors import UserError
from facecast.recon.learn.pool_files import PoolManifest, RealCrops, load_shard, shard_path
from facecast.recon.learn.render_pool import PoolConfig

CONFIG = PoolConfig(faces=8, shard=4, yaw=20.0, pitch=10.0)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_build_bakes_textures_renders_shards_and_resumes_a_lost_one(tmp_path, astronaut):
    directory = tmp_path / "pool"
    lines: list[str] = []
    summary = build_pool(directory, [astronaut], CONFIG, workers=1, log=lines.append, progress=False)
    assert summary.rendered == 2 and summary.textures == 1 and summary.drawn == 8 and summary.kept >= 6
    manifest = PoolManifest.read(directory)
    assert manifest.config == CONFIG and manifest.sources["textures"] == ["astronaut.png"]
    first = load_shard(shard_path(directory, 1))
    shard_path(directory, 1).unlink()
    again = build_pool(directory, [], CONFIG, workers=1, log=lines.append, progress=False)
    assert again.rendered == 1 and any(line.startswith("resuming pool") for line in lines)
    np.testing.assert_array_equal(load_shard(shard_path(directory, 1)).crops, first.crops)
    assert not list(directory.glob("*.tmp*"))
    with pytest.raises(UserError, match="another config"):
        build_pool(directory, [], PoolConfig(faces=16, shard=4), log=lines.append, progress=False)


def test_user_errors_name_the_bad_input(tmp_path):
    with pytest.raises(UserError, match="no photos"):
        build_pool(tmp_path / "p", [], CONFIG, progress=False)
    with pytest.raises(UserError, match="does not exist"):
        build_pool(tmp_path / "p", [tmp_path / "missing.jpg"], CONFIG, progress=False)
    with pytest.raises(UserError, match="workers"):
        build_pool(tmp_path / "p", [tmp_path / "missing.jpg"], CONFIG, workers=0, progress=False)
    with pytest.raises(UserError, match=".npz"):
        collect_crops([tmp_path / "a.jpg"], tmp_path / "crops.txt")


def test_crops_of_real_photos(tmp_path, astronaut):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(blank)
    out = tmp_path / "real.npz"
    assert collect_crops([astronaut, blank, tmp_path / "broken.jpg"], out, log=lambda _: None) == 1
    crops = RealCrops.load(out, 96)
    assert len(crops) == 1 and crops.sources == [str(astronaut)] and crops.crops.std() > 0.1
