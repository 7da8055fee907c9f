"""Fuzzing the readers of user files (issue #18): real files written by facecast (a tracked take, a photo's
coefficients, a live profile, a Live Link CSV, the model npz, a batch manifest) and a hand-written VRM mapping,
mutated at random (JSON values of every type anywhere, lines and cells of CSV / JSON lines, bytes, arrays of the
npz), go through the reader the command uses. Each case gives a valid result or a clean error (a user error for
what commands read, ``ValueError`` for the library readers), never another exception, each in under 2 s."""

from __future__ import annotations

import io
import json
import math
import random
import sqlite3

import numpy as np
import pytest
from fuzz_tools import FuzzReport, mutate_json, mutate_text
from typer.testing import CliRunner

from facecast.pipelines.errors import is_user_error


@pytest.fixture(scope="module")
def take(shared_dir, tmp_path_factory):
    """A real ``facecast track`` output folder (8 frames of talk1)."""
    from facecast.pipelines.cli import app

    out = tmp_path_factory.mktemp("take")
    result = CliRunner().invoke(app, ["track", str(shared_dir / "media/videos/talk1.mp4"), "-o", str(out),
                                      "--max-frames", "8", "--mode", "fast"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def photo_json(tmp_path_factory):
    """A real ``facecast reconstruct`` coefficient file (the astronaut)."""
    from facecast.pipelines.commands.reconstruct import ReconstructConfig, reconstruct
    from facecast.recon.photo import PhotoConfig

    out = tmp_path_factory.mktemp("photo") / "head.glb"
    reconstruct(None, out, config=ReconstructConfig(photo=PhotoConfig(mode="fast"), bake_texture=False),
                preview=False)
    return out.with_suffix(".json")


def _names(path):
    """A clean error for what a command reads: a user error, one line, naming the file."""
    return lambda exc: is_user_error(exc) and str(path) in str(exc) and "\n" not in str(exc)


def _finite(*arrays) -> None:
    for array in arrays:
        assert array is None or np.isfinite(np.asarray(array, dtype=np.float64)).all()


def test_takes(model, take, tmp_path):
    from facecast.pipelines.commands.transfer import load_take

    lines, summary = (take / "coeffs.jsonl").read_bytes(), json.loads((take / "track.json").read_text())
    rng, report = random.Random(1), FuzzReport()
    for case in range(150):
        folder = tmp_path / f"take{case}"
        folder.mkdir()
        (folder / "coeffs.jsonl").write_bytes(lines if case % 3 == 0 else _mutated_lines(lines, rng))
        (folder / "track.json").write_text(json.dumps(mutate_json(summary, rng) if case % 3 == 0 else summary))

        def check(track):
            _finite(track.weights, track.rotation, track.translation, track.gaze)
            assert math.isfinite(track.fps) and 0 < track.fps <= 1000, track.fps
            assert all(0 <= g < len(track.weights) for g in track.gaps), track.gaps
        report.run(case, lambda folder=folder: load_take(folder, model), check, _names(folder))
    print(f"takes: {report}")
    report.assert_clean()


def _mutated_lines(data: bytes, rng: random.Random) -> bytes:
    """JSON lines with a value changed in one record (or, a third of the time, a text edit)."""
    if rng.random() < 0.33:
        return mutate_text(data, rng)
    records = data.decode().splitlines()
    k = rng.randrange(len(records))
    records[k] = json.dumps(mutate_json(json.loads(records[k]), rng))
    return ("\n".join(records) + "\n").encode()


def test_identities_and_coefficient_targets(model, photo_json, tmp_path):
    from facecast.pipelines.commands.transfer import load_target
    from facecast.pipelines.export.avatar import load_identity
    from facecast.transfer.json_files import MAX_IDENTITY_WEIGHT

    document = json.loads(photo_json.read_text())
    identity_paths = [("identity", k) for k in range(100)] + [("identity",)]
    rng, identities, targets = random.Random(2), FuzzReport(), FuzzReport()
    for case in range(200):
        path = tmp_path / f"id{case}.json"
        paths = identity_paths if case % 2 else None  # half the edits hit the identity itself
        path.write_text(json.dumps(mutate_json(document, rng, paths)) if case % 5 else
                        mutate_text(photo_json.read_bytes(), rng).decode("utf-8", "replace"))

        def check_identity(weights):
            assert weights.shape == (100,) and np.isfinite(weights).all()
            assert np.abs(weights).max() <= MAX_IDENTITY_WEIGHT
        identities.run(case, lambda path=path: load_identity(path), check_identity, _names(path))
        targets.run(case, lambda path=path: load_target(path, model), lambda t: _finite(t.rig.identity),
                    _names(path))
    print(f"identities: {identities}; coefficient targets: {targets}")
    identities.assert_clean()
    targets.assert_clean()


def test_live_profiles(tmp_path):
    from facecast.pipelines.live.profile import ChannelTuning, Profile, load_profile, save_profile
    from facecast.recon.model.arkit import ARKIT_52

    neutral = np.linspace(0.0, 0.2, 52)
    good = save_profile(Profile({"jawOpen": ChannelTuning(1.2, 0.8, 0.05), "eyeBlinkLeft": ChannelTuning(0.9)},
                                neutral, np.array([0.0, 0.1, 0.0, 0.995]), np.array([0.0, 0.01, 0.5])),
                        tmp_path / "good.json")
    document = json.loads(good.read_text())
    rng, report = random.Random(3), FuzzReport()
    for case in range(150):
        path = tmp_path / f"p{case}.json"
        path.write_text(json.dumps(mutate_json(document, rng)))

        def check(profile):
            _finite(profile.neutral, profile.rest_rotation, profile.rest_translation)
            assert set(profile.channels) <= set(ARKIT_52)
            for tuning in profile.channels.values():
                _finite([tuning.gain, tuning.curve, tuning.threshold])
            shaped = profile.shape(np.full(52, 0.5))
            assert shaped.shape == (52,) and np.isfinite(shaped).all()
            rotation, translation = profile.pose(np.array([0.0, 0.0, 0.0, 1.0]), np.zeros(3))
            _finite(rotation, translation)
        report.run(case, lambda path=path: load_profile(path), check, _names(path))
    print(f"profiles: {report}")
    report.assert_clean()


def test_vrm_mappings(tmp_path):
    from facecast.transfer.vrm import load_vrm_mapping

    document = {"happy": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}, "aa": {"jawOpen": 1.0},
                "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, "ou": {"mouthFunnel": 0.7, "mouthPucker": 0.3}}
    rng, report = random.Random(4), FuzzReport()
    for case in range(150):
        path = tmp_path / f"m{case}.json"
        path.write_text(json.dumps(mutate_json(document, rng)))
        report.run(case, lambda path=path: load_vrm_mapping(path),
                   lambda m: _finite([w for weights in m.values() for w in weights.values()]),
                   lambda exc, path=path: isinstance(exc, ValueError) and str(path) in str(exc))
    print(f"VRM mappings: {report}")
    report.assert_clean()


def test_coefficient_and_live_link_csvs(take):
    from facecast.pipelines.export.coefficients import read_coefficients_csv
    from facecast.pipelines.export.livelink import export_livelink_csv, read_livelink_csv

    coefficients = (take / "coeffs.csv").read_bytes()
    rng = np.random.default_rng(5)
    live_link = export_livelink_csv(rng.uniform(0, 1, (12, 52)), rng.uniform(-0.3, 0.3, (12, 3)),
                                    rng.uniform(-0.2, 0.2, (12, 6)), fps=30.0)
    rng, csvs, takes = random.Random(5), FuzzReport(), FuzzReport()
    for case in range(200):
        data = mutate_text(coefficients, rng)
        csvs.run(case, lambda data=data: read_coefficients_csv(data),
                 lambda t: _finite(t.expression, t.rotation, t.translation, t.landmarks, t.time), ValueError)
        data = mutate_text(live_link, rng)
        takes.run(case, lambda data=data: read_livelink_csv(data),
                  lambda t: _finite(t.arkit, t.head_rotation, t.eyes, t.seconds), ValueError)
    print(f"coefficient CSVs: {csvs}; Live Link CSVs: {takes}")
    csvs.assert_clean()
    takes.assert_clean()


def _mutated_npz(arrays: dict[str, np.ndarray], raw: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # the file cut or bytes changed
        data = bytearray(raw)
        if rng.random() < 0.5:
            del data[rng.randint(0, len(data)):]
        else:
            for _ in range(8):
                data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    arrays = dict(arrays)
    name = rng.choice(sorted(arrays))
    value = arrays[name]
    if kind == 1:
        del arrays[name]
    elif kind == 2 and value.size:
        arrays[name] = value.reshape(-1)[: max(0, value.size - rng.randint(1, 7))]
    elif kind == 3 and value.dtype.kind == "f" and value.size:
        value = value.copy()
        value.reshape(-1)[rng.randrange(value.size)] = rng.choice([np.nan, np.inf, 1e30])
        arrays[name] = value
    elif kind == 4 and value.size and value.dtype.kind in "fiub":
        arrays[name] = value.astype(rng.choice([np.int8, np.float16, np.bool_, "U3"]))
    else:
        arrays[name] = np.array(rng.choice([[], 0, "x", [[1, 2], [3, 4]]]))
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_model_npz_files(shared_dir, tmp_path):
    import torch

    from facecast.recon.model.morphable import MorphableModel
    from facecast.recon.model.topology import load_ict_data

    source = shared_dir / "assets/ict-facekit/ict_facekit_light.npz"
    raw = source.read_bytes()
    with np.load(source, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    rng, report = random.Random(6), FuzzReport()
    for case in range(30):
        path = tmp_path / "ict_facekit_light.npz"
        path.write_bytes(_mutated_npz(arrays, raw, rng))

        def check(data):
            for name, value in vars(data).items():
                if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                    assert np.isfinite(value).all(), name
            model = MorphableModel(data)  # a model that builds and gives a finite head
            assert torch.isfinite(model(torch.zeros(1, 100), torch.zeros(1, 53)).vertices).all()
        report.run(case, lambda path=path: load_ict_data(path), check, _names(path), limit_s=6.0)
    print(f"model npz files: {report}")
    assert not report.failures, report.failures[:8]
    assert not report.slow and report.refused, report


def test_batch_manifests(tmp_path):
    from facecast.pipelines.batch.manifest import InputFacts, Manifest

    good = tmp_path / "good.sqlite"
    with Manifest(good) as manifest:
        for k in range(20):
            manifest.observe(f"clip{k}_mp4", f"/footage/clip{k}.mp4", InputFacts(100 + k, 1.0, f"{k:064x}"), "r1")
            manifest.mark_running(f"clip{k}_mp4")
            manifest.mark_done(f"clip{k}_mp4", (f"clip{k}_mp4/track.json",), 30, 1.5, "host:1")
    raw = good.read_bytes()
    rng, report = random.Random(7), FuzzReport()
    for case in range(60):
        path = tmp_path / f"m{case}.sqlite"
        data = bytearray(raw)
        if case % 3 == 0:
            del data[rng.randint(0, len(data)):]
        else:
            for _ in range(rng.randint(1, 40)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))

        def attempt(path=path):
            with Manifest(path) as manifest:
                rows = manifest.rows()
                manifest.mark_running(rows[0].key if rows else "x")
                return rows
        report.run(case, attempt, lambda rows: None, is_user_error)
    print(f"batch manifests: {report}")
    assert not report.failures, report.failures[:8]
    assert not report.slow and report.cases == 60, report
    assert sqlite3.connect(good).execute("SELECT count(*) FROM inputs").fetchone() == (20,)
