"""End-to-end photo reconstruction on real photos, through the CLI and the real readers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import trimesh
from PIL import Image
from typer.testing import CliRunner

from facecast.pipelines.cli import app
from facecast.recon.landmarks.evaluation import nme, read_pts

runner = CliRunner()


@pytest.fixture(scope="module")
def lfpw_photo(shared_dir) -> Path:
    return shared_dir / "media/lfpw68-train/image_0001.jpg"


@pytest.fixture(scope="module")
def reconstructed(lfpw_photo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "sub" / "head.glb"
    result = runner.invoke(app, ["reconstruct", str(lfpw_photo), "-o", str(out), "--obj", "--ply"])
    assert result.exit_code == 0, result.output
    return out


def test_outputs_are_complete_and_readable(reconstructed):
    folder = reconstructed.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "head.glb", "head.json", "head.mtl", "head.obj", "head.ply", "head_M_Face.png", "head_preview.png"]
    gltf = pygltflib.GLTF2().load(str(reconstructed))
    assert len(gltf.meshes[0].extras["targetNames"]) == 52
    assert len(gltf.images) == 1 and len(gltf.textures) == 1  # the baked face texture
    obj = trimesh.load(folder / "head.obj", process=False, force="mesh")
    assert len(obj.vertices) > 20000
    mtl = (folder / "head.mtl").read_text()
    assert "map_Kd head_M_Face.png" in mtl
    texture = np.asarray(Image.open(folder / "head_M_Face.png"))
    assert texture.shape == (1024, 1024, 3) and 40 < texture.mean() < 230
    view = gltf.bufferViews[gltf.images[0].bufferView]  # the GLB's face texture is the OBJ's, pixel for pixel
    embedded = gltf.binary_blob()[view.byteOffset:view.byteOffset + view.byteLength]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(embedded)).convert("RGB")), texture)
    # the scalp, ears and neck take this person's skin tone (the texture's), the eyes their iris colour
    colours = {m.name: np.array(m.pbrMetallicRoughness.baseColorFactor[:3]) for m in gltf.materials}
    srgb = np.where(colours["M_BackHead"] <= 0.0031308, colours["M_BackHead"] * 12.92,
                    1.055 * colours["M_BackHead"] ** (1 / 2.4) - 0.055)
    assert np.abs(srgb - np.median(texture.reshape(-1, 3), 0) / 255).max() < 0.08
    assert "M_Pupil" in colours and colours["M_IrisLeft"].tolist() == colours["M_IrisRight"].tolist()
    assert "newmtl M_Pupil" in mtl


def test_json_landmarks_match_the_annotation(reconstructed, lfpw_photo):
    record = json.loads(reconstructed.with_suffix(".json").read_text())
    assert len(record["expression"]) == 53 and len(record["arkit"]) == 52
    assert all(0.0 <= w <= 1.0 for w in record["expression"].values())
    assert len(record["landmarks"]["mediapipe478"]) == 478
    truth = read_pts(lfpw_photo.with_suffix(".pts"))
    error = nme(np.array(record["landmarks"]["ibug68"]), truth)
    assert error < 0.06, error  # projected model landmarks vs the human annotation
    assert record["camera"]["focal_px"] > 0 and len(record["identity"]) == 100


def test_preview_shows_the_mesh_over_the_photo(reconstructed, lfpw_photo):
    preview = np.asarray(Image.open(reconstructed.parent / "head_preview.png")).astype(int)
    photo = np.asarray(Image.open(lfpw_photo).convert("RGB")).astype(int)
    assert preview.shape == photo.shape
    changed = np.abs(preview - photo).sum(-1) > 30
    assert 0.02 < changed.mean() < 0.9  # the mesh covers the face, not the whole picture


def _assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_photos_are_one_line_errors_and_write_nothing(tmp_path):
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(tmp_path / "gray.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out" / "head.glb"
    cases = [("gray.png", ["no face found", "gray.png"]), ("broken.jpg", ["broken.jpg"]),
             ("missing.jpg", ["missing.jpg", "no such file"])]
    for name, fragments in cases:
        result = runner.invoke(app, ["reconstruct", str(tmp_path / name), "-o", str(out)])
        _assert_user_error(result, *fragments)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    _assert_user_error(runner.invoke(app, ["reconstruct", str(tmp_path / "gray.png"), "-o", str(out),
                                           "--mode", "quick"]), "--mode must be one of")
    _assert_user_error(runner.invoke(app, ["reconstruct", str(tmp_path / "gray.png"), "-o", str(out),
                                           "--mode", "fast"]), "no face found")
    _assert_user_error(runner.invoke(app, ["reconstruct", str(tmp_path / "gray.png"), "-o", str(out),
                                           "--texture-size", "300"]), "--texture-size must be", "300")


@pytest.mark.parametrize("mode", ["fast", "refine"])
def test_regressor_modes_write_a_head_whose_landmarks_fit_the_photo(mode, lfpw_photo, tmp_path):
    out = tmp_path / "head.glb"
    result = runner.invoke(app, ["reconstruct", str(lfpw_photo), "-o", str(out), "--mode", mode])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.glb", "head.json", "head_preview.png"]
    gltf = pygltflib.GLTF2().load(str(out))
    assert len(gltf.images) == 1  # the face texture is baked in these modes too
    record = json.loads(out.with_suffix(".json").read_text())
    error = nme(np.array(record["landmarks"]["ibug68"]), read_pts(lfpw_photo.with_suffix(".pts")))
    assert error < (0.08 if mode == "fast" else 0.06), error


def test_all_faces_of_a_group_photo_get_their_own_heads(shared_dir, tmp_path):
    """Two annotated photos side by side: two heads, largest first, each fitting its own annotation."""
    folder = shared_dir / "media/lfpw68-train"
    left, right = (np.asarray(Image.open(folder / f"image_000{k}.jpg").convert("RGB")) for k in (1, 2))
    canvas = np.full((max(left.shape[0], right.shape[0]), left.shape[1] + right.shape[1], 3), 90, np.uint8)
    canvas[:left.shape[0], :left.shape[1]] = left
    canvas[:right.shape[0], left.shape[1]:] = right
    Image.fromarray(canvas).save(tmp_path / "group.png")
    out = tmp_path / "out" / "people.glb"
    result = runner.invoke(app, ["reconstruct", str(tmp_path / "group.png"), "-o", str(out), "--all-faces",
                                 "--mode", "refine", "--no-texture"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "people_0.glb", "people_0.json", "people_0_preview.png",
        "people_1.glb", "people_1.json", "people_1_preview.png"]
    truths = [read_pts(folder / "image_0001.pts"), read_pts(folder / "image_0002.pts") + [left.shape[1], 0]]
    records = [json.loads((out.parent / f"people_{k}.json").read_text()) for k in (0, 1)]
    boxes = [np.ptp(np.array(r["landmarks"]["detected_mediapipe478"]), axis=0).prod() for r in records]
    assert boxes[0] >= boxes[1]  # largest first
    for record in records:
        points = np.array(record["landmarks"]["ibug68"])
        error = min(nme(points, truth) for truth in truths)
        assert error < 0.06, error
    assert {int(np.argmin([nme(np.array(r["landmarks"]["ibug68"]), t) for t in truths])) for r in records} == {0, 1}
    assert runner.invoke(app, ["reconstruct", str(tmp_path / "group.png"), "-o", str(out), "--all-faces",
                               "--face-index", "1"]).exit_code == 2
