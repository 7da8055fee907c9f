"""Batch building blocks that need no worker process: inputs and their output keys,
job options and their fingerprint, the model cache, publishing outputs."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from facecast.pipelines.batch.engines import cached_model
from facecast.pipelines.batch.inputs import assign_keys, expand_inputs, output_name
from facecast.pipelines.batch.jobs import BatchUsageError, Job, JobResult, make_options, options_fingerprint
from facecast.pipelines.batch.outputs import final_dir, publish, temp_dir
from facecast.pipelines.batch.probe import ProbeOptions
from facecast.pipelines.batch.registry import resolve_job


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
