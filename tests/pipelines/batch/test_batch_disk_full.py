"""Disk full during ``batch`` (issue #18: ``sqlite3.OperationalError`` traceback): the batch stops with one line,
keeps what is done, hands the rest back as pending, leaves no temporary folder; a rerun goes on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from batch_tools import filling_disk_job, manifest_rows, output_state, write_photo

from facecast.pipelines.batch import runner as batch
from facecast.pipelines.batch.manifest import DiskFullError


def _photos(folder, names):
    for k, name in enumerate(names):
        write_photo(folder / name, (40 * k, 90, 200 - 30 * k))


def test_a_job_meeting_a_full_disk_stops_the_batch_and_a_rerun_goes_on(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _photos(src, ["a.png", "b.png", "c.png", "d.png", "e.png"])
    (src / "FULL").write_text("")
    with pytest.raises(DiskFullError, match=r"no space left .* stopped with 2 of 5 inputs done") as info:
        batch.run(src / "*.png", out, job=filling_disk_job(), workers=1)
    assert "run the same command again" in str(info.value)
    rows = manifest_rows(out)
    assert {k: r["status"] for k, r in rows.items()} == {
        "a_png": "done", "b_png": "done", "c_png": "pending", "d_png": "pending", "e_png": "pending"}
    left = sorted(p.name for p in out.iterdir() if not p.name.startswith("manifest.sqlite"))  # (+ -wal, -shm)
    assert left == [".lock", "a_png", "b_png"]  # no temporary folder, nothing of c
    kept = {k: output_state(out, k) for k in ("a_png", "b_png")}

    (src / "FULL").unlink()  # space freed
    again = batch.run(src / "*.png", out, job=filling_disk_job(), workers=1)
    assert again.exit_code == 0 and again.count("done") == 5
    assert sorted(i.key for i in again.inputs if i.ran) == ["c_png", "d_png", "e_png"]
    assert {k: output_state(out, k) for k in kept} == kept  # not recomputed


def _mount_tmpfs(path, size: str) -> bool:
    if shutil.which("mount") is None:
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_real_full_disk_through_the_cli(tmp_path):
    """On a 400 KiB tmpfs the thumbnails and the manifest's own writes meet ENOSPC / SQLITE_FULL."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "400k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        src = tmp_path / "in"
        _photos(src, [f"p{k:02d}.png" for k in range(12)])
        for path in src.iterdir():  # ~100 KB thumbnails of noise: two or three fit
            from PIL import Image
            Image.effect_noise((300, 300), 80).convert("RGB").save(path)
        command = [str(Path(sys.executable).parent / "facecast"), "batch", str(src), "-o", str(disk / "b"),
                   "--job", "probe", "-O", "thumbnail_size=256", "--workers", "1", "-q"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no space left on the disk holding" in errors[0], result.stderr
        rows = manifest_rows(disk / "b")
        done = sorted(k for k, r in rows.items() if r["status"] == "done")
        assert 1 <= len(done) < 12 and all(r["status"] in ("done", "pending") for r in rows.values()), rows
        assert not [p for p in (disk / "b").iterdir() if p.name.startswith((".tmp-", ".trash-"))]
        assert all((disk / "b" / k / "thumbnail.png").stat().st_size > 0 for k in done)
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        again = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert all(r["status"] == "done" for r in manifest_rows(disk / "b").values())
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
