"""Batch layer with the local engine: a corpus of bad inputs, reruns, crashes, kill -9, the CLI.

Real light-weight work: the ``probe`` job reads every input through pipelines/media.py.

The "unreadable file" case: tests run as root here, and root reads a ``chmod 000``
file anyway. So the corpus holds a ``chmod 000`` JPEG (expected ``failed`` with
PermissionError for a normal user, ``done`` for root, decided by really trying to
open it) and, unreadable for everyone, a FIFO named ``pipe.mp4`` (opening it would
block; the batch refuses it as "not a regular file") and a broken symlink ``gone.jpg``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from facecast.pipelines import batch
from facecast.pipelines.batch_engines import cached_model
from facecast.pipelines.batch_inputs import assign_keys, expand_inputs, output_name
from facecast.pipelines.batch_jobs import (BatchUsageError, Job, JobResult, make_options,
                                           options_fingerprint, resolve_job)
from facecast.pipelines.batch_outputs import exclusive, final_dir, publish, temp_dir
from facecast.pipelines.batch_probe import ProbeOptions

TALK = Path(__file__).resolve().parents[3] / "shared" / "media" / "videos" / "talk1.mp4"
SPACED = unicodedata.normalize("NFC", "dir with spaces/Zoë 東京 portrait.jpg")


# --- corpus -----------------------------------------------------------------------------

def write_clip(path: Path, frames: int = 10, size: int = 96) -> None:
    """A short low-resolution H.264 clip cut from the shared talking-head video."""
    import av

    with av.open(str(TALK)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(src.decode(video=0)):
            if index >= frames * 3:
                break
            if index % 3 == 0:
                image = frame.to_image().resize((size, size))
                for packet in stream.encode(av.VideoFrame.from_image(image)):
                    dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


VFR_MS = [0, 33, 66, 200, 233, 500, 533, 1000]


def write_vfr(path: Path) -> None:
    """A variable-frame-rate clip: 8 frames at irregular millisecond timestamps."""
    import av

    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=30)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, ms in enumerate(VFR_MS):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 30, np.uint8), "rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


def write_huge_png(path: Path, side: int = 12000) -> None:
    """A constant-colour RGB PNG of side x side, streamed row by row (~0.5 MB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    packer = zlib.compressobj(9)
    row = b"\x00" + bytes([90, 120, 200]) * side
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))


def write_photo(path: Path, color=(200, 30, 30), size=(100, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def root_reads_anything(path: Path) -> bool:
    try:
        path.open("rb").close()
        return True
    except PermissionError:
        return False


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    clips, photos = root / "clips", root / "photos"
    clips.mkdir()
    write_clip(clips / "clip.mp4")
    write_vfr(clips / "vfr.mp4")
    (clips / "truncated.mp4").write_bytes(TALK.read_bytes()[: TALK.stat().st_size * 2 // 5])
    (clips / "empty.mp4").write_bytes(b"")
    (clips / "notes.mp4").write_text("this is a text file named like a video\n")
    os.mkfifo(clips / "pipe.mp4")
    yy, xx = np.mgrid[0:120, 0:160]
    photos.mkdir()
    Image.fromarray(np.stack([xx % 256, yy * 2, (xx + yy) % 256], -1).astype(np.uint8)).save(
        photos / "noface.png")
    write_huge_png(photos / "huge.png")
    Image.new("L", (50, 40), 77).save(photos / "gray.png")
    Image.new("CMYK", (64, 48), (0, 50, 100, 0)).save(photos / "cmyk.jpg")
    Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16)).save(photos / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (80, 40), (10, 200, 30)).save(photos / "rotated.jpg", exif=exif)
    write_photo(photos / SPACED)
    os.symlink(photos / "missing-target.jpg", photos / "gone.jpg")
    write_photo(photos / "locked.jpg", (5, 5, 5))
    os.chmod(photos / "locked.jpg", 0)
    (photos / "readme.txt").write_text("not an input of probe\n")
    return root


def corpus_expectations(corpus: Path) -> dict[str, tuple[str, str | None]]:
    """key -> (status, error type) the probe job must give each corpus input."""
    readable = root_reads_anything(corpus / "photos/locked.jpg")
    locked = ("done", None) if readable else ("failed", "PermissionError")
    return {
        "clips/clip_mp4": ("done", None), "clips/vfr_mp4": ("done", None),
        "clips/truncated_mp4": ("failed", "MediaError"),  # moov atom is at the end: cut off
        "clips/empty_mp4": ("failed", "MediaError"), "clips/notes_mp4": ("failed", "MediaError"),
        "clips/pipe_mp4": ("failed", "InputError"),
        "photos/noface_png": ("done", None),  # probe does not look for faces; track will fail it
        "photos/huge_png": ("done", None), "photos/gray_png": ("done", None),
        "photos/cmyk_jpg": ("done", None), "photos/deep16_png": ("done", None),
        "photos/rotated_jpg": ("done", None), "photos/" + SPACED.replace(".jpg", "_jpg"): ("done", None),
        "photos/gone_jpg": ("failed", "InputError"), "photos/locked_jpg": locked,
        "photos/readme_txt": ("skipped", None),
    }


def probe_json(out: Path, key: str) -> dict:
    return json.loads((out / key / "probe.json").read_text())


def visible_dirs_with_files(out: Path) -> set[str]:
    """Output folders (relative keys) that hold files, hidden folders excluded."""
    found = set()
    for path in out.rglob("*"):
        rel = path.relative_to(out)
        if path.is_file() and len(rel.parts) > 1 and not rel.parts[0].startswith("."):
            found.add(rel.parent.as_posix())
    return found


def manifest_rows(out: Path) -> dict[str, dict]:
    with sqlite3.connect(out / "manifest.sqlite") as db:
        db.row_factory = sqlite3.Row
        return {row["key"]: dict(row) for row in db.execute("SELECT * FROM inputs")}


# --- the corpus through the local engine -------------------------------------------------

def test_corpus_every_input_gets_its_status_and_good_ones_their_outputs(corpus, tmp_path):
    out = tmp_path / "out"
    summary = batch.run(corpus, out, job="probe", workers=2)
    expected = corpus_expectations(corpus)
    assert {i.key: (i.status, i.error_type) for i in summary.inputs} == expected
    assert summary.exit_code == 1 and summary.count("skipped") == 1
    rows = manifest_rows(out)
    assert {k: (r["status"], r["error_type"]) for k, r in rows.items()} == expected
    assert "not a readable video" in rows["clips/truncated_mp4"]["error_message"]
    assert "empty file" in rows["clips/empty_mp4"]["error_message"]
    assert "named pipe" in rows["clips/pipe_mp4"]["error_message"]
    assert "broken symbolic link" in rows["photos/gone_jpg"]["error_message"]
    done = {k for k, (status, _) in expected.items() if status == "done"}
    assert visible_dirs_with_files(out) == done  # nothing half-written, nothing extra
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".trash-*"))
    for key in done:
        assert rows[key]["attempts"] == 1 and rows[key]["sha256"] and rows[key]["worker"]
        assert json.loads(rows[key]["outputs"]) == [f"{key}/probe.json", f"{key}/thumbnail.png"]
        assert max(Image.open(out / key / "thumbnail.png").size) <= 64
    assert probe_json(out, "clips/clip_mp4")["frames"] == 10
    vfr = probe_json(out, "clips/vfr_mp4")
    assert (vfr["frames"], vfr["first_time"], vfr["last_time"]) == (8, 0.0, 1.0)
    assert probe_json(out, "photos/huge_png")["width"] == 12000
    assert Image.open(out / "photos/huge_png/thumbnail.png").size == (64, 64)
    rotated = probe_json(out, "photos/rotated_jpg")
    assert (rotated["width"], rotated["height"]) == (40, 80)  # EXIF orientation applied
    assert Image.open(out / "photos/deep16_png/thumbnail.png").mode == "RGB"
    assert summary.frames == 10 + 8 + 1 * sum(k.startswith("photos/") for k in done)


# --- reruns --------------------------------------------------------------------------------

def output_state(out: Path, key: str) -> tuple:
    files = sorted((out / key).iterdir())
    return tuple((f.name, f.read_bytes(), f.stat().st_mtime_ns) for f in files)


def test_rerun_skips_unchanged_recomputes_changed_and_retries_failed_on_request(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for name, color in (("a.png", (255, 0, 0)), ("b.png", (0, 255, 0)), ("c.png", (0, 0, 255))):
        write_photo(src / name, color)
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    first = batch.run(src, out, job="probe", workers=1)
    assert [(i.key, i.status) for i in first.inputs] == [
        ("a_png", "done"), ("b_png", "done"), ("bad_png", "failed"), ("c_png", "done")]
    before = {k: output_state(out, k) for k in ("a_png", "b_png", "c_png")}

    again = batch.run(src, out, job="probe", workers=1)
    assert again.processed == 0 and again.unchanged == 3 and again.exit_code == 1
    assert {k: output_state(out, k) for k in before} == before
    assert {k: r["attempts"] for k, r in manifest_rows(out).items()} == {
        "a_png": 1, "b_png": 1, "c_png": 1, "bad_png": 1}

    write_photo(src / "b.png", (9, 9, 9))  # new content
    changed = batch.run(src, out, job="probe", workers=1, job_options={"delay_s": 0.01})
    assert [i.key for i in changed.inputs if i.ran] == ["b_png"]
    assert output_state(out, "b_png") != before["b_png"]
    assert output_state(out, "a_png") == before["a_png"]

    retried = batch.run(src, out, job="probe", workers=1, retry_failed=True)
    assert [(i.key, i.status, i.attempts) for i in retried.inputs if i.ran] == [("bad_png", "failed", 2)]

    write_photo(src / "bad.png")  # fixed by the user: changed content is recomputed
    (out / "c_png" / "thumbnail.png").unlink()  # an output lost: recomputed
    fixed = batch.run(src, out, job="probe", workers=1)
    assert sorted(i.key for i in fixed.inputs if i.ran) == ["bad_png", "c_png"]
    assert fixed.exit_code == 0 and fixed.count("done") == 4

    resized = batch.run(src, out, job="probe", workers=1, job_options={"thumbnail_size": 16})
    assert resized.processed == 4 and Image.open(out / "a_png" / "thumbnail.png").size == (16, 13)


def test_worker_crash_fails_only_that_input_and_the_pool_is_rebuilt(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for index, name in enumerate(("a.png", "b-crash.png", "c.png", "d.png", "e.png")):
        write_photo(src / name, (index * 40, 0, 0))
    summary = batch.run(src, out, job="probe", workers=2, job_options={"crash_on": "crash"})
    statuses = {i.key: (i.status, i.error_type) for i in summary.inputs}
    assert statuses == {"a_png": ("done", None), "b-crash_png": ("failed", "WorkerCrashed"),
                        "c_png": ("done", None), "d_png": ("done", None), "e_png": ("done", None)}
    assert visible_dirs_with_files(out) == {"a_png", "c_png", "d_png", "e_png"}
    assert not list(out.glob(".tmp-*"))


# --- kill -9 and resume --------------------------------------------------------------------

def test_kill_9_leaves_no_partial_outputs_and_the_rerun_resumes(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for index in range(8):
        write_photo(src / f"p{index}.png", (index * 30, 100, 50))
    command = [sys.executable, "-m", "facecast.pipelines.batch", str(src), "-o", str(out), "--job", "probe",
               "--workers", "2", "-q", "-O", "delay_s=0.7"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not visible_dirs_with_files(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    time.sleep(0.3)  # the workers die with their parent (PR_SET_PDEATHSIG)

    rows = manifest_rows(out)
    finished = {k for k, r in rows.items() if r["status"] == "done"}
    visible = visible_dirs_with_files(out)  # published but not yet recorded: rerun recomputes it
    assert 1 <= len(visible) < 8 and finished <= visible
    assert all(rows[k]["status"] == "running" for k in visible - finished)
    assert any(r["status"] == "running" for r in rows.values())
    for key in visible:  # every visible output is complete
        assert probe_json(out, key)["kind"] == "image"
        Image.open(out / key / "thumbnail.png").load()
    kept = {k: output_state(out, k) for k in finished}

    summary = batch.run(src, out, job="probe", workers=2)  # delay_s does not affect outputs
    assert summary.exit_code == 0 and summary.count("done") == 8
    assert {i.key for i in summary.inputs if not i.ran} == finished
    assert {k: output_state(out, k) for k in finished} == kept  # bytes and mtimes
    rows = manifest_rows(out)
    assert all(rows[k]["attempts"] == 1 for k in finished)
    assert not list(out.glob(".tmp-*")) and visible_dirs_with_files(out) == set(rows)


# --- command line ------------------------------------------------------------------------------

def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        batch.main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_cli_json_summary_and_exit_codes(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    write_photo(src / "a.jpg")
    code, stdout, _ = run_main([str(src / "*.jpg"), "-o", str(out), "--job", "probe", "--workers", "1", "-q", "--json"],
                                    capsys)
    data = json.loads(stdout)
    assert code == 0 and data["totals"]["done"] == 1 and data["inputs"][0]["outputs"] == [
        "a_jpg/probe.json", "a_jpg/thumbnail.png"]
    (src / "b.jpg").write_bytes(b"")
    code, stdout, stderr = run_main([str(src), "-o", str(out), "--job", "probe", "--workers", "1", "--json"], capsys)
    data = json.loads(stdout)
    assert code == 1 and data["totals"] == {
        "done": 1, "failed": 1, "skipped": 0, "processed": 1, "unchanged": 1, "inputs": 2}
    assert [(i["key"], i["status"], i["error_type"]) for i in data["inputs"]] == [
        ("a_jpg", "done", None), ("b_jpg", "failed", "MediaError")]
    assert "failed and skipped inputs" in stderr and "MediaError" in stderr
    for argv, fragment in (([str(src / "*.mov"), "-o", str(out)], "no input files matched"),
                           ([str(src), "-o", str(out), "--job", "probe", "-O", "size=3"], "has no option 'size'"),
                           ([str(src), "-o", str(out), "--engine", "spark"], "unknown engine"),
                           ([str(src), "-o", str(out), "--job", "nope"], "unknown job 'nope'")):
        code, stdout, stderr = run_main(argv, capsys)
        assert code == 2 and stdout == "" and stderr.startswith("error: ") and fragment in stderr


def test_a_second_batch_on_the_same_output_is_refused(tmp_path):
    write_photo(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    with exclusive(tmp_path / "out"), pytest.raises(BatchUsageError, match="another batch"):
        batch.run(tmp_path / "in", tmp_path / "out", job="probe")


# --- inputs, options, outputs (no worker processes) -------------------------------------------

def test_expand_inputs_globs_folders_files_dedup_order_and_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in ("footage/day 1/b.mp4", "footage/day 1/a.mp4", "footage/day2/deep/c.mp4",
                "footage/.hidden/x.mp4", "footage/notes.txt", "other/notes.txt", "solo.MOV"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    decomposed = unicodedata.normalize("NFD", "Zoë.jpg")
    (tmp_path / "footage" / decomposed).write_bytes(b"x")
    (tmp_path / "footage" / "out").mkdir()
    (tmp_path / "footage" / "out" / "old.mp4").write_bytes(b"x")
    items = expand_inputs(["footage/**/*.mp4", "footage", "footage/day 1/a.mp4", "other/notes.txt",
                           "solo.MOV"], tmp_path / "footage" / "out")
    keys = [i.key for i in items]
    assert keys == sorted(keys) and len({i.path for i in items}) == len(items) == 7
    assert {k for k in keys if not k.startswith("notes_txt-")} == {
        "day 1/a_mp4", "day 1/b_mp4", "day2/deep/c_mp4", "Zoë_jpg", "solo_MOV"}
    clashing = [k for k in keys if k.startswith("notes_txt-")]  # same name under two roots
    assert len(set(clashing)) == 2 and all(len(k) == len("notes_txt-") + 8 for k in clashing)
    assert next(i for i in items if i.key == "day 1/a_mp4").path == tmp_path / "footage/day 1/a.mp4"
    with pytest.raises(BatchUsageError, match="no input files matched"):
        expand_inputs(["footage/**/*.webm"], tmp_path / "out")
    with pytest.raises(BatchUsageError, match="no such file"):
        expand_inputs(["missing.mp4"], tmp_path / "out")


def test_output_names_are_safe_and_never_nest_in_each_other():
    assert output_name(PurePosixPath("a/b.c.mp4")) == "a/b.c_mp4"
    assert output_name(PurePosixPath(".hidden.jpg")) == "_hidden_jpg"
    assert output_name(PurePosixPath('x:y?"z.png')) == "x_y__z_png"
    assert output_name(PurePosixPath("manifest.sqlite/a.png")) == "_manifest.sqlite/a_png"
    keys = assign_keys([(Path("/r/a.mp4"), PurePosixPath("a.mp4")),
                        (Path("/r/a_mp4/b.mp4"), PurePosixPath("a_mp4/b.mp4"))])
    assert keys[0].startswith("a_mp4-") and keys[1] == "a_mp4/b_mp4"


def test_options_from_strings_and_which_options_change_outputs():
    job = resolve_job("probe")
    options = make_options(job, {"thumbnail_size": "32", "delay_s": "0.5"})
    assert options == ProbeOptions(thumbnail_size=32, delay_s=0.5)
    assert options_fingerprint(job, options) == options_fingerprint(job, ProbeOptions(32))
    assert options_fingerprint(job, options) != options_fingerprint(job, ProbeOptions(33))
    with pytest.raises(BatchUsageError, match="thumbnail_size must be in"):
        make_options(job, {"thumbnail_size": "2"})
    with pytest.raises(BatchUsageError, match="delay_s"):
        make_options(job, {"delay_s": "soon"})


@dataclass(frozen=True)
class TypedOptions:
    regions: tuple[str, ...] = ("face",)
    preview: bool = True
    max_frames: int | None = None
    assets: Path | None = None


def test_option_strings_become_tuples_booleans_optionals_and_paths():
    job = Job("typed", TypedOptions, _never_run, lambda p, o: (), frozenset({".png"}))
    options = make_options(job, {"regions": "face, eyes", "preview": "off", "max_frames": "12",
                                 "assets": "a b/ict.npz"})
    assert options == TypedOptions(("face", "eyes"), False, 12, Path("a b/ict.npz"))
    assert make_options(job, {"max_frames": "none"}).max_frames is None
    with pytest.raises(BatchUsageError, match="not a boolean"):
        make_options(job, {"preview": "maybe"})


LOADS: list[object] = []


def _counting_load(options: object) -> object:
    LOADS.append(options)
    return object()


def _never_run(input_path: Path, output_dir: Path, options: object, model: object) -> JobResult:
    raise AssertionError("not called")


def test_model_is_loaded_once_per_job_and_options():
    job = Job("counting", ProbeOptions, _never_run, lambda p, o: (), frozenset({".png"}),
              load=_counting_load)
    LOADS.clear()
    first = cached_model(job, ProbeOptions())
    assert cached_model(job, ProbeOptions()) is first and len(LOADS) == 1
    assert cached_model(job, ProbeOptions(32)) is not first and len(LOADS) == 2


def test_publish_replaces_older_outputs_in_one_rename(tmp_path):
    final = final_dir(tmp_path, "day 1/clip_mp4")
    final.mkdir(parents=True)
    (final / "old.json").write_text("old")
    temp_dir(tmp_path, "day 1/clip_mp4").mkdir()
    (temp_dir(tmp_path, "day 1/clip_mp4") / "new.json").write_text("new")
    assert publish(tmp_path, "day 1/clip_mp4") == final
    assert [p.name for p in final.iterdir()] == ["new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day 1"]
    with pytest.raises(ValueError, match="leaves the output folder"):
        final_dir(tmp_path, "../escape")
