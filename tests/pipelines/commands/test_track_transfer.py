"""End-to-end video tracking and expression transfer on a real clip, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import trimesh
from gltf_tools import arkit_sphere_glb, read_accessor, validate
from typer.testing import CliRunner

from facecast.pipelines.cli import app
from facecast.pipelines.export.coefficients import read_coefficients_csv
from facecast.pipelines.export.livelink import read_livelink_csv
from facecast.pipelines.export.pc2 import read_pc2
from facecast.pipelines.media import probe_video
from facecast.recon.model.arkit import ARKIT_52

runner = CliRunner()
FRAMES = 16


@pytest.fixture(scope="module")
def clip(shared_dir) -> Path:
    return shared_dir / "media/videos/talk1.mp4"


@pytest.fixture(scope="module")
def tracked(clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("track") / "take"
    result = runner.invoke(app, ["track", str(clip), "-o", str(out), "--max-frames", str(FRAMES), "--preview"])
    assert result.exit_code == 0, result.output
    return out


def test_track_outputs_agree(tracked):
    assert sorted(p.name for p in tracked.iterdir()) == [
        "coeffs.csv", "coeffs.jsonl", "mesh.obj", "mesh.pc2", "preview.mp4", "track.json"]
    cache = read_pc2((tracked / "mesh.pc2").read_bytes())
    # the OBJ's own vertex list (trimesh would split vertices at UV seams)
    lines = [line.split()[1:] for line in (tracked / "mesh.obj").read_text().splitlines() if line.startswith("v ")]
    vertices = np.array(lines, dtype=np.float64)
    assert cache.frames.shape[0] == FRAMES and cache.frames.shape[1] == len(vertices)
    np.testing.assert_allclose(cache.frames[0], vertices, atol=1e-4)  # same vertex order
    track = read_coefficients_csv((tracked / "coeffs.csv").read_bytes())
    assert track.num_frames == FRAMES and len(track.names) == 53
    assert track.landmarks.shape == (FRAMES, 68, 2)
    assert np.all((track.expression >= 0) & (track.expression <= 1))
    summary = json.loads((tracked / "track.json").read_text())
    assert summary["frames"] == FRAMES and summary["frames_without_face"] == []
    stages = summary["stage_seconds"]
    assert set(stages) == {"start", "decode", "detect", "fit", "outputs", "preview"}
    assert all(seconds > 0 for seconds in stages.values())
    with av.open(str(tracked / "preview.mp4")) as container:  # one preview frame per tracked frame
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    # metres, like the OBJ: a head about 0.3 m tall
    assert 0.15 < np.ptp(cache.frames[0], axis=0).max() < 0.5 and summary["units"] == "m, y up"
    # a talking head moves a little from frame to frame, but no vertex jumps by centimetres
    step = np.linalg.norm(np.diff(cache.frames, axis=0), axis=-1)
    assert 1e-6 < step.mean() < 0.003 and step.max() < 0.02


def test_fast_track_agrees_with_the_accurate_one(clip, tracked, tmp_path):
    """--mode fast (the regressor per frame): the same frames, landmarks within a few pixels of the fit's."""
    out = tmp_path / "fast"
    result = runner.invoke(app, ["track", str(clip), "-o", str(out), "--max-frames", str(FRAMES), "--mode", "fast",
                                 "--no-preview"])
    assert result.exit_code == 0, result.output
    fast = read_coefficients_csv((out / "coeffs.csv").read_bytes())
    accurate = read_coefficients_csv((tracked / "coeffs.csv").read_bytes())
    assert fast.num_frames == FRAMES and np.all((fast.expression >= 0) & (fast.expression <= 1))
    eyes = np.linalg.norm(accurate.landmarks[:, 36] - accurate.landmarks[:, 45], axis=-1)
    gap = np.linalg.norm(fast.landmarks - accurate.landmarks, axis=-1).mean(1) / eyes
    assert gap.mean() < 0.06, gap  # within 6 % of the eye distance of the accurate fit


def test_preview_video_has_every_frame(tracked):
    from facecast.pipelines.media import probe_video

    assert probe_video(tracked / "preview.mp4").n_frames == FRAMES


def test_transfer_onto_a_user_glb_keeps_its_data(clip, tmp_path):
    original = arkit_sphere_glb()
    (tmp_path / "user.glb").write_bytes(original)
    out = tmp_path / "anim.glb"
    with pytest.warns(UserWarning, match="customWrinkle"):
        result = runner.invoke(app, ["transfer", "--driver", str(clip), "--target", str(tmp_path / "user.glb"),
                                     "-o", str(out), "--formats", "glb,csv", "--max-frames", str(FRAMES)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    import pygltflib

    gltf = pygltflib.GLTF2().load_from_bytes(data)
    before = pygltflib.GLTF2().load_from_bytes(original)
    assert gltf.binary_blob()[: len(before.binary_blob())] == before.binary_blob()
    assert len(gltf.animations) == 1
    document = json.loads(gltf.to_json())
    sampler = gltf.animations[0].samplers[0]
    assert read_accessor(document, gltf.binary_blob(), sampler.input).shape == (FRAMES, 1)
    assert validate([out])[0]["numErrors"] == 0
    take = read_livelink_csv(out.with_suffix(".csv").read_bytes())  # resampled onto 60 fps
    fps = probe_video(clip).fps
    assert take.arkit.shape == (int(np.floor((FRAMES - 1) / fps * 60 + 1e-9)) + 1, 52)
    assert np.abs(take.seconds - take.seconds[0] - np.arange(take.num_frames) / 60).max() <= 1e-3
    assert np.abs(take.eyes[:, [0, 1, 3, 4]]).max() > 0  # the eye angles are filled from the irises


def _variable_rate_clip(clip: Path, path: Path, frames: int = 20) -> Path:
    """The first ``frames`` frames of ``clip`` re-encoded 20 ms and 80 ms apart in turn (phone-style VFR)."""
    from fractions import Fraction

    import av

    from facecast.pipelines.media import iter_frames

    images = [f.rgb for f in iter_frames(clip, frames)]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for k, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
            pts += 20 if k % 2 == 0 else 80
        container.mux(stream.encode(None))
    return path


def test_variable_frame_rate_driver_is_resampled_and_reported(clip, tmp_path):
    from facecast.pipelines.media import iter_frames, probe_video

    driver = _variable_rate_clip(clip, tmp_path / "vfr.mp4")
    times = np.array([f.time for f in iter_frames(driver)])
    fps = probe_video(driver).fps
    (tmp_path / "user.glb").write_bytes(arkit_sphere_glb())
    out = tmp_path / "anim.glb"
    with pytest.warns(UserWarning, match="customWrinkle"):
        result = runner.invoke(app, ["transfer", "--driver", str(driver), "--target", str(tmp_path / "user.glb"),
                                     "-o", str(out), "--formats", "glb,json", "--mode", "fast"])
    assert result.exit_code == 0, result.output
    assert "variable frame rate" in result.output and "resampled" in result.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["frames"] == int(np.floor((times[-1] - times[0]) * fps + 1e-9)) + 1
    assert "variable frame rate" in record["timing"]
    assert validate([out])[0]["numErrors"] == 0


def test_transfer_rejects_a_target_without_morph_targets(clip, tmp_path):
    box = trimesh.creation.box()
    (tmp_path / "box.glb").write_bytes(box.export(file_type="glb"))
    result = runner.invoke(app, ["transfer", "--driver", str(clip), "--target", str(tmp_path / "box.glb"),
                                 "-o", str(tmp_path / "o.glb")])
    assert result.exit_code == 2 and "box.glb" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.glb").exists()


def _encode(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("kind, fragments", [("empty", ["empty file"]), ("text", ["not a readable video"]),
                                             ("noface", ["no face found"])])
def test_bad_videos_are_one_line_errors_and_write_nothing(tmp_path, kind, fragments):
    video = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        video.write_bytes(b"")
    elif kind == "text":
        video.write_text("this is not a video")
    else:
        _encode(video, [np.full((96, 128, 3), 90 + 5 * k, np.uint8) for k in range(8)])
    out = tmp_path / "out"
    result = runner.invoke(app, ["track", str(video), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]  # after the progress line
    assert message.startswith("error: "), result.output
    assert all(f in message for f in fragments), message
    assert not out.exists() or list(out.iterdir()) == []


def test_driver_frames_without_a_face_hold_the_pose_and_are_reported(clip, tmp_path):
    from facecast.pipelines.media import iter_frames

    frames = [f.rgb for f in iter_frames(clip, 12)]
    blank = [4, 5, 6, 7]
    for k in blank:  # a cut to an empty grey frame: no face there
        frames[k] = np.full_like(frames[k], 128)
    driver = tmp_path / "cut.mp4"
    _encode(driver, frames, fps=25)
    (tmp_path / "user.glb").write_bytes(arkit_sphere_glb())
    out = tmp_path / "anim.glb"
    with pytest.warns(UserWarning, match="customWrinkle"):
        result = runner.invoke(app, ["transfer", "--driver", str(driver), "--target", str(tmp_path / "user.glb"),
                                     "-o", str(out), "--formats", "glb,json", "--mode", "fast",
                                     "--smoothing", "one_euro"])
    assert result.exit_code == 0, result.output
    assert f"no face in {len(blank)} frames (pose held): {blank}" in result.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["frames_without_face"] == blank and record["frames"] == len(frames)
    # held frames repeat the last tracked pose; the causal filter only converges on it
    rotation = np.array(record["head_rotation"])
    assert np.allclose(rotation[blank], rotation[blank[0] - 1][None], atol=1e-9)
    assert validate([out])[0]["numErrors"] == 0


def test_transfer_to_an_unusable_output_path_fails_before_any_work(clip, tmp_path):
    (tmp_path / "user.glb").write_bytes(arkit_sphere_glb())
    (tmp_path / "afile").write_text("not a folder")
    result = runner.invoke(app, ["transfer", "--driver", str(clip), "--target", str(tmp_path / "user.glb"),
                                 "-o", str(tmp_path / "afile" / "anim.glb"), "--formats", "glb,csv"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: ") and "afile" in message and "not a folder" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "user.glb"]



def test_transfer_reuses_a_tracked_take(tracked, clip, tmp_path):
    """--driver take/ (a `facecast track` output, or its coeffs.jsonl) gives what tracking the video again
    gives, without tracking it."""
    import time

    from facecast.pipelines.export.coefficients import read_coefficients_jsonl

    target = tmp_path / "ict.json"
    target.write_text(json.dumps({"identity": [0.0] * 100}))
    out = {}
    for name, driver in (("video", clip), ("take", tracked), ("jsonl", tracked / "coeffs.jsonl")):
        began = time.perf_counter()
        result = runner.invoke(app, ["transfer", "--driver", str(driver), "--target", str(target),
                                     "-o", str(tmp_path / name / "anim.glb"), "--formats", "csv",
                                     "--max-frames", str(FRAMES)])
        assert result.exit_code == 0, result.output
        out[name] = (read_livelink_csv((tmp_path / name / "anim.csv").read_bytes()), time.perf_counter() - began)
    take = read_coefficients_jsonl((tracked / "coeffs.jsonl").read_bytes())
    assert take.gaze is not None and np.abs(take.gaze).max() > 0
    np.testing.assert_allclose(out["take"][0].arkit, out["jsonl"][0].arkit)
    np.testing.assert_allclose(out["take"][0].arkit, out["video"][0].arkit, atol=0.02)  # the same fit (0.014 seen)
    np.testing.assert_allclose(out["take"][0].eyes, out["video"][0].eyes, atol=0.02)
    assert out["take"][1] < 0.5 * out["video"][1]  # no tracking
    result = runner.invoke(app, ["transfer", "--driver", str(tmp_path), "--target", str(target),
                                 "-o", str(tmp_path / "bad" / "anim.glb")])
    assert result.exit_code != 0 and "coeffs.jsonl is missing" in result.output


def test_a_reconstruction_json_target_keeps_its_photo_texture(clip, tmp_path):
    """transfer --target head.json (from reconstruct) animates the head with the texture and colours of the
    head.glb reconstruct wrote beside it."""
    import pygltflib

    from facecast.pipelines.export.gltf import read_appearance

    result = runner.invoke(app, ["reconstruct", "-o", str(tmp_path / "head.glb"), "--no-preview",
                                 "--texture-size", "256"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "anim" / "anim.glb"
    result = runner.invoke(app, ["transfer", "--driver", str(clip), "--target", str(tmp_path / "head.json"),
                                 "-o", str(out), "--max-frames", "4"])
    assert result.exit_code == 0, result.output
    theirs, our = read_appearance((tmp_path / "head.glb").read_bytes()), read_appearance(out.read_bytes())
    assert our[0] and [(t.material, t.png) for t in our[0]] == [(t.material, t.png) for t in theirs[0]]
    assert our[1].keys() == theirs[1].keys()
    for name, colour in theirs[1].items():  # iris colour and skin tone of the photo
        np.testing.assert_allclose(our[1][name], colour, atol=1e-6)
    gltf = pygltflib.GLTF2.load_from_bytes(out.read_bytes())
    assert len(gltf.animations) == 1 and gltf.meshes[0].extras["targetNames"] == list(ARKIT_52)
    assert validate([out])[0]["numErrors"] == 0
    ict = tmp_path / "ict.glb"
    result = runner.invoke(app, ["transfer", "--driver", str(clip), "--target", str(tmp_path / "head.json"),
                                 "-o", str(ict), "--max-frames", "4", "--names", "ict"])
    assert result.exit_code == 0, result.output
    assert len(pygltflib.GLTF2.load_from_bytes(ict.read_bytes()).meshes[0].extras["targetNames"]) == 53
    result = runner.invoke(app, ["transfer", "--driver", str(clip), "--target", str(tmp_path / "head.json"),
                                 "-o", str(tmp_path / "x.glb"), "--names", "apple"])
    assert result.exit_code != 0 and "--names must be arkit or ict, got 'apple'" in result.output


def test_transfer_head_motion_and_head_node_options(tracked, tmp_path):
    """--head-motion none writes no head channel; --head-node names the node that turns; a wrong name is one line."""
    import pygltflib

    (tmp_path / "user.glb").write_bytes(arkit_sphere_glb(extra=()))
    nodes = [n.name for n in pygltflib.GLTF2.load_from_bytes(arkit_sphere_glb(extra=())).nodes]

    def paths(args):
        out = tmp_path / f"anim{len(list(tmp_path.iterdir()))}.glb"
        result = runner.invoke(app, ["transfer", "--driver", str(tracked), "--target", str(tmp_path / "user.glb"),
                                     "-o", str(out), *args])
        assert result.exit_code == 0, result.output
        gltf = pygltflib.GLTF2.load_from_bytes(out.read_bytes())
        return {(gltf.nodes[c.target.node].name, c.target.path) for c in gltf.animations[0].channels}

    assert ("Head", "rotation") in paths([])
    assert not any(path in ("rotation", "translation") for _, path in paths(["--head-motion", "none"]))
    assert {("Head", "rotation"), ("Head", "translation")} <= paths(["--head-motion", "full"])
    assert ("Hat", "rotation") in paths(["--head-node", "Hat"]) and "Hat" in nodes
    result = runner.invoke(app, ["transfer", "--driver", str(tracked), "--target", str(tmp_path / "user.glb"),
                                 "-o", str(tmp_path / "x.glb"), "--head-node", "Nope"])
    assert result.exit_code != 0 and "no node named 'Nope'" in result.output and "Traceback" not in result.output


def test_transfer_onto_a_compressed_capture_head_decodes_it_unless_told(tracked, tmp_path):
    """A meshopt-compressed target (gltf-transform) comes out decoded and valid; --keep-compression keeps it."""
    from capture_head import capture_glb
    from gltf_tools import compress_glb

    from facecast.pipelines.export.gltf_compression import compression_of
    from facecast.transfer.glb import read_glb

    target = tmp_path / "capture.glb"
    target.write_bytes(compress_glb(capture_glb(), "meshopt", tmp_path))
    used = {}
    for name, args in (("decoded", []), ("kept", ["--keep-compression"])):
        out = tmp_path / f"{name}.glb"
        result = runner.invoke(app, ["transfer", "--driver", str(tracked), "--target", str(target), "-o", str(out),
                                     *args])
        assert result.exit_code == 0, result.output
        used[name] = compression_of(read_glb(out.read_bytes()).document)
        assert validate([out])[0]["numErrors"] == 0
    assert used == {"decoded": (), "kept": ("EXT_meshopt_compression",)}


def test_a_gltf_target_with_files_beside_it_gives_a_real_glb(tracked, tmp_path):
    """Issue #18: out.glb used to be the .gltf's JSON text with its buffer link dangling. Now the buffer
    and the image files are packed into the GLB; a buffer pointing at a device is one line."""
    import io

    import pygltflib
    from PIL import Image

    from facecast.transfer.glb import read_glb

    chunks = read_glb(arkit_sphere_glb(extra=()))
    document = chunks.document
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "face data.bin").write_bytes(chunks.binary)
    document["buffers"] = [{"byteLength": len(chunks.binary), "uri": "face%20data.bin"}]
    png = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 120, 90)).save(png, format="PNG")
    (folder / "skin.png").write_bytes(png.getvalue())
    document["images"] = [{"uri": "skin.png"}]  # (the sphere has no UVs: the image is carried, not shown)
    target = folder / "face.gltf"
    target.write_text(json.dumps(document))
    out = tmp_path / "out.glb"
    result = runner.invoke(app, ["transfer", "--driver", str(tracked), "--target", str(target), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"glTF"
    gltf = pygltflib.GLTF2.load_from_bytes(out.read_bytes())
    assert len(gltf.animations) == 1 and gltf.images[0].bufferView is not None and gltf.images[0].uri is None
    assert gltf.images[0].mimeType == "image/png"
    assert validate([out])[0]["numErrors"] == 0
    document["buffers"] = [{"byteLength": 64, "uri": "/dev/zero"}]
    target.write_text(json.dumps(document))
    result = runner.invoke(app, ["transfer", "--driver", str(tracked), "--target", str(target),
                                 "-o", str(tmp_path / "bad.glb")])
    assert result.exit_code == 2 and "/dev/zero is not a file next to it" in result.output, result.output
    assert not (tmp_path / "bad.glb").exists()
