"""Careless and hostile inputs (issue #18): each is one ``error:`` line naming the file and the problem,
exit status 2, no traceback, nothing written."""

from __future__ import annotations

import json
import struct

import pytest
from typer.testing import CliRunner

from facecast.pipelines.cli import app

runner = CliRunner()


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # (a progress bar may show)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _glb(json_bytes: bytes) -> bytes:
    body = json_bytes + b" " * (-len(json_bytes) % 4)
    chunk = struct.pack("<II", len(body), 0x4E4F534A) + body
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunk)) + chunk


@pytest.mark.parametrize("content, fragments", [
    (json.dumps({"identity": [1e30] + [0.0] * 99}), ("weight 0 is 1e+30", "at most 10")),
    (json.dumps({"identity": [0.0] * 50 + [-1e308] + [0.0] * 49}), ("weight 50 is -1e+308",)),
    ("[" * 200_000 + "]" * 200_000, ("is not valid JSON",)),
])
def test_implausible_or_deep_identity_files(tmp_path, content, fragments):
    path = tmp_path / "id.json"
    path.write_text(content)
    _one_line_error(runner.invoke(app, ["avatar", "--identity", str(path), "-o", str(tmp_path / "x.glb")]),
                    str(path), *fragments)
    assert not (tmp_path / "x.glb").exists()


def test_a_deeply_nested_glb_target_is_one_line(tmp_path, shared_dir):
    target = tmp_path / "deep.glb"
    target.write_bytes(_glb(b"[" * 200_000 + b"]" * 200_000))
    result = runner.invoke(app, ["transfer", "--driver", str(shared_dir / "media/videos/talk1.mp4"), "--target",
                                 str(target), "-o", str(tmp_path / "out.glb")])
    _one_line_error(result, "deep.glb")
    assert not (tmp_path / "out.glb").exists()


def test_an_output_never_overwrites_the_input_photo(tmp_path):
    """Issue #18: ``reconstruct head_preview.png -o head.glb`` wrote its preview over the input."""
    from PIL import Image
    from skimage import data

    photo = tmp_path / "head_preview.png"
    Image.fromarray(data.astronaut()).save(photo)
    before = photo.read_bytes()
    result = runner.invoke(app, ["reconstruct", str(photo), "-o", str(tmp_path / "head.glb")])
    _one_line_error(result, "would overwrite the input photo")
    assert photo.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["head_preview.png"]


@pytest.mark.parametrize("job, option, fragment", [
    ("reconstruct", "face_index=-1", "face_index must be >= 0"),
    ("track", "max_frames=-5", "max_frames must be >= 1"),
    ("track", "smooth=inf", "smooth must be a finite number"),
])
def test_batch_options_are_checked_before_any_work(tmp_path, job, option, fragment):
    """Issue #18: face_index=-1 quietly took the smallest face, max_frames=-5 blamed a good video."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jpg").write_bytes(b"not looked at")
    result = runner.invoke(app, ["batch", str(inputs / "*"), "-o", str(tmp_path / "out"), "--job", job,
                                 "-O", option])
    _one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


def test_track_smooth_inf_is_refused_at_once(tmp_path, shared_dir):
    result = runner.invoke(app, ["track", str(shared_dir / "media/videos/talk1.mp4"), "-o", str(tmp_path / "t"),
                                 "--smooth", "inf"])
    _one_line_error(result, "--smooth must be a finite number in [0, 100], got inf")


def _start_track(video, outdir):
    import subprocess
    import sys
    from pathlib import Path

    command = [str(Path(sys.executable).parent / "facecast"), "track", str(video), "-o", str(outdir), "--mode", "fast"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_temp(outdir, process, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if list(outdir.glob(".facecast-track-*")):
            return True
        time.sleep(0.05)
    return False


def test_killed_runs_leave_nothing_the_next_run_does_not_clean(tmp_path, shared_dir):
    """Issue #18: SIGTERM and SIGKILL left .facecast-track-* folders that later runs never removed."""
    import signal

    video, outdir = shared_dir / "media/videos/talk1.mp4", tmp_path / "take"
    outdir.mkdir()
    process = _start_track(video, outdir)
    assert _wait_for_temp(outdir, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err[-2000:]
    assert list(outdir.iterdir()) == []  # SIGTERM cleans up like Ctrl-C
    process = _start_track(video, outdir)
    assert _wait_for_temp(outdir, process)
    process.kill()  # SIGKILL: nothing can clean up...
    process.communicate(timeout=60)
    assert list(outdir.glob(".facecast-track-*"))
    result = runner.invoke(app, ["track", str(video), "-o", str(outdir), "--mode", "fast", "--max-frames", "4"])
    assert result.exit_code == 0, result.output
    assert not list(outdir.glob(".facecast-track-*"))  # ...so the next run does


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 broken", b"\x00" * 1000])
def test_a_damaged_model_file_is_one_line(tmp_path, content):
    """Issue #18: a zero-byte model .npz printed only 'Aborted.'."""
    model = tmp_path / "ict_facekit_light.npz"
    model.write_bytes(content)
    result = runner.invoke(app, ["avatar", "-o", str(tmp_path / "x.glb"), "--assets", str(model)])
    _one_line_error(result, "is damaged", "delete it")


def test_an_output_name_too_long_for_the_file_system_is_one_line(tmp_path):
    result = runner.invoke(app, ["avatar", "-o", str(tmp_path / ("h" * 300 + ".glb"))])
    _one_line_error(result, "bytes long; file systems take 255")


def test_image_bombs_are_refused_and_big_photos_decoded_small(tmp_path):
    """Issue #18: a 484 MP grayscale JPEG (a few MB on disk) took 12 GB; a 50 MP photo 6.8 GB."""
    import subprocess
    import sys

    from PIL import Image

    bomb = tmp_path / "bomb.jpg"
    Image.new("L", (22000, 22000), 128).save(bomb, quality=50)
    result = runner.invoke(app, ["reconstruct", str(bomb), "-o", str(tmp_path / "b.glb")])
    _one_line_error(result, "22000 x 22000 pixels is more than the 250 MP")
    big = tmp_path / "big.jpg"
    Image.new("RGB", (8660, 5800), (120, 100, 90)).save(big, quality=80)
    # the peak from /proc (VmHWM: this process image's own; ru_maxrss would carry pytest's over the exec)
    code = ("import sys; from facecast.pipelines.media import read_image; a = read_image(sys.argv[1]); "
            "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(a.shape[0], a.shape[1], int(peak) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, check=True).stdout
    height, width, peak_mb = map(int, out.split())
    assert max(height, width) == 4096 and peak_mb < 600, out  # decoded at a quarter scale, then shrunk


def test_a_ray_address_nobody_answers_on_fails_fast(tmp_path):
    """Issue #18: --ray-address at a closed port hung for more than 5 minutes."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    photos = tmp_path / "in"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    start = time.perf_counter()
    result = runner.invoke(app, ["batch", str(photos / "*"), "-o", str(tmp_path / "out"), "--job", "probe",
                                 "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in errors[0]
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out").exists()  # found before the output folder is made


def test_a_batch_that_cannot_start_leaves_no_output_folder(tmp_path):
    """Issue #18: failures left empty output folders (here: a manifest and a lock for a glob matching nothing)."""
    result = runner.invoke(app, ["batch", str(tmp_path / "nothing" / "*.mp4"), "-o", str(tmp_path / "out")])
    _one_line_error(result, "no input files matched")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_during_track_is_one_line_and_leaves_nothing(tmp_path, shared_dir, monkeypatch):
    """Issue #18: disk full during track: the clean-up itself raised in the PC2 writer, the temporary folder
    stayed (and the disk stayed full)."""
    import errno

    from facecast.pipelines.export.pc2 import Pc2Writer

    written = []
    original = Pc2Writer.append

    def append(self, frames):
        original(self, frames)
        written.append(1)
        if len(written) > 1:  # the second batch finds the disk full
            self._handle.write(b"\0" * 4096)  # something still buffered when the clean-up closes the file
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Pc2Writer, "append", append)
    outdir = tmp_path / "take"
    result = runner.invoke(app, ["track", str(shared_dir / "media/videos/talk1.mp4"), "-o", str(outdir),
                                 "--mode", "fast", "--max-frames", "40"])
    _one_line_error(result, "no space left on the disk", "the partial take was removed")
    assert not outdir.exists()  # not even the folder the run made


def test_a_folder_in_the_way_of_an_output_is_found_before_the_work(tmp_path, shared_dir):
    """Issue #18: a folder named track.json in the output folder: 5 of 6 files published, then a traceback."""
    outdir = tmp_path / "take"
    (outdir / "track.json").mkdir(parents=True)
    result = runner.invoke(app, ["track", str(shared_dir / "media/videos/talk1.mp4"), "-o", str(outdir),
                                 "--mode", "fast", "--max-frames", "4"])
    _one_line_error(result, "track.json: a folder of that name is in the way")
    assert sorted(p.name for p in outdir.iterdir()) == ["track.json"]  # nothing published, nothing left


def test_a_batch_glob_that_climbs_out_of_its_folder_works(tmp_path):
    """Issue #18: a glob such as ``*/../..`` gave a traceback (its files are not under the pattern's root)."""
    from PIL import Image

    from facecast.pipelines.batch.inputs import expand_inputs

    (tmp_path / "shoot" / "photos" / "day1").mkdir(parents=True)
    Image.new("RGB", (32, 32), (100, 90, 80)).save(tmp_path / "shoot" / "top.png")
    pattern = str(tmp_path / "shoot" / "photos" / "*" / ".." / "..")  # = shoot/, above the glob's folder
    inputs = expand_inputs([pattern], tmp_path / "out")
    assert [i.path.name for i in inputs] == ["top.png"] and all(".." not in i.key for i in inputs)
    result = runner.invoke(app, ["batch", pattern, "-o", str(tmp_path / "out"), "--job", "probe"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert len(list((tmp_path / "out").glob("*/probe.json"))) == 1


@pytest.mark.parametrize("kind, fragment", [
    ("folder", "a folder, not a file"), ("fifo", "a FIFO, not a regular file"), ("device", "a device"),
    ("loop", "a loop of symbolic links"), ("missing", "no such file"),
])
def test_an_input_that_is_not_a_file_says_what_it_is(tmp_path, kind, fragment):
    """Issue #18: a symbolic link loop gave a traceback; a folder, a FIFO and /dev/zero said "no such file"."""
    import os

    path = {"folder": tmp_path / "photos", "fifo": tmp_path / "p.png", "device": "/dev/zero",
            "loop": tmp_path / "loop.png", "missing": tmp_path / "nope.png"}[kind]
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        os.symlink(path, path)
    for command in (["reconstruct", str(path), "-o", str(tmp_path / "h.glb")],
                    ["track", str(path), "-o", str(tmp_path / "out")]):
        _one_line_error(runner.invoke(app, command), str(path), fragment)
    assert not (tmp_path / "h.glb").exists() and not (tmp_path / "out").exists()
