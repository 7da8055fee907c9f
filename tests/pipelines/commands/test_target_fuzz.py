"""Fuzzing transfer targets (issue #18): valid GLB targets mutated at random (values of every JSON type put
anywhere in the document, truncated files) go through what ``facecast transfer`` does with a target: load
it, then write an animation into it. Each case ends in a valid GLB or a one-line user error, never another
exception, never longer than 2 s."""

from __future__ import annotations

import random
import time
import warnings

import numpy as np
from fuzz_tools import json_paths, mutate_json
from gltf_tools import arkit_sphere_glb

from facecast.pipelines.commands.transfer import load_target
from facecast.pipelines.errors import UserError
from facecast.pipelines.export.gltf_animation import animate_document
from facecast.transfer.glb import GlbChunks, read_glb, write_glb
from facecast.transfer.retarget import RetargetConfig, retarget

CASES = 400


def test_mutated_targets_end_in_a_glb_or_a_user_error(model, tmp_path):
    base = read_glb(arkit_sphere_glb())
    paths = [p for p in json_paths(base.document) if p]
    rng = random.Random(18)
    weights, rotation = np.zeros((3, 53)), np.zeros((3, 3))
    rotation[:, 1] = [0.0, 0.1, 0.2]
    outcomes = {"glb": 0, "user error": 0}
    failures, slow = [], []
    target = tmp_path / "target.glb"
    for case in range(CASES):
        data = write_glb(GlbChunks(mutate_json(base.document, rng, paths), base.binary))
        if rng.random() < 0.2:
            data = data[:rng.randint(12, len(data))]
        target.write_bytes(data)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = load_target(target, model)
                animation = retarget(weights, rotation, None, 30.0, loaded.rig,
                                     RetargetConfig(neutral="none", smoothing="none"))
                out = animate_document(loaded.original, animation)
            assert len(read_glb(out).document["animations"]) >= 1
            outcomes["glb"] += 1
        except UserError:
            outcomes["user error"] += 1
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            failures.append((case, f"{type(exc).__name__}: {exc}"[:200]))
        if time.perf_counter() - start > 2.0:
            slow.append(case)
    print(f"{CASES} mutated targets: {outcomes}")
    assert not failures, failures[:10]
    assert not slow, slow
    assert outcomes["glb"] > 20 and outcomes["user error"] > 100, outcomes  # both kinds of cases were made
