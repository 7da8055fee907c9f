"""Batch layer with the local engine: reruns, worker crashes, kill -9 and resume, the CLI.

Real light-weight work: the ``probe`` job reads every input through pipelines/media.py.
The corpus of bad inputs is in test_batch_corpus.py, the building blocks that need no
worker process in test_batch_units.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from batch_tools import manifest_rows, output_state, probe_json, visible_dirs_with_files, write_photo
from PIL import Image

from facecast.pipelines.batch import runner as batch
from facecast.pipelines.batch.jobs import BatchUsageError
from facecast.pipelines.batch.outputs import exclusive

# --- reruns --------------------------------------------------------------------------------

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
    command = [sys.executable, "-m", "facecast.pipelines.batch.runner", str(src), "-o", str(out), "--job", "probe",
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


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_at_once_and_leave_no_temporary_folder(tmp_path, stop):
    """Issue #18: SIGTERM during a batch left the in-flight input's `.tmp-*` folder, after waiting for it."""
    from pathlib import Path

    src, out = tmp_path / "in", tmp_path / "out"
    for index in range(4):
        write_photo(src / f"p{index}.png", (index * 60, 100, 50))
    command = [str(Path(sys.executable).parent / "facecast"), "batch", str(src), "-o", str(out), "--job", "probe",
               "--workers", "1", "-q", "-O", "delay_s=4"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not visible_dirs_with_files(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # the next input is in its 4 s of work
    sent = time.monotonic()
    process.send_signal(stop)
    stderr = process.communicate(timeout=30)[1]
    assert time.monotonic() - sent < 3.0, "waited for the input in flight"
    assert process.returncode == 128 + stop and "Traceback" not in stderr, stderr
    rows = manifest_rows(out)
    assert sorted(r["status"] for r in rows.values()) == ["done", "pending", "pending", "pending"], rows
    assert not list(out.glob(".tmp-*")) and visible_dirs_with_files(out) == {"p0_png"}
    again = batch.run(src, out, job="probe", workers=1)
    assert again.exit_code == 0 and again.processed == 3


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
