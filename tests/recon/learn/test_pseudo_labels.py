"""Pseudo-labels of real faces: the file, ``facecast label``, and training runs that mix them in."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facecast.pipelines.cli import app
from facecast.recon.learn.losses import LossWeights
from facecast.recon.learn.pseudo_labels import PseudoLabels, concatenate, describe
from facecast.recon.learn.regressor import RegressorConfig, load_regressor, save_regressor, shipped_regressor_path
from facecast.recon.learn.train_config import TrainConfig, TrainConfigError
from facecast.recon.learn.training import Trainer, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
LANDMARKS_ONLY = replace(RegressorConfig(), image_branch=False)


@pytest.fixture(scope="module")
def labels(shared_dir, tmp_path_factory):
    """``facecast label`` on 3 LFPW photos, a few frames of a clip and one file that is no image."""
    folder = tmp_path_factory.mktemp("labels")
    photos = sorted((shared_dir / "media/lfpw68-train").glob("*.jpg"))[:3]
    (folder / "notes.txt").write_text("not a face")
    out = folder / "real.npz"
    result = runner.invoke(app, ["label", *map(str, photos), str(shared_dir / "media/videos/talk1.mp4"),
                                 str(folder / "notes.txt"), "-o", str(out), "--every", "4", "--max-frames", "16"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_label_writes_the_fits_of_photos_and_frames(labels, model):
    out, output = labels
    loaded = PseudoLabels.load(out)
    assert len(loaded) == 3 + 4 and "labelled 7 faces" in output and "skipped 1 inputs" in output
    assert "notes.txt is neither a photo" in output
    assert [s.rsplit(":", 1)[1] for s in loaded.sources[3:]] == ["0", "4", "8", "12"]
    assert loaded.expression.min() >= 0 and loaded.expression.max() <= 1
    # the stored fits explain their stored detections (a few pixels on ~200-400 px faces)
    from facecast.recon.fit.landmark_fit import default_camera
    from facecast.recon.model.coeffs import project_points
    from facecast.recon.photo import PhotoReconstructor

    sparse = PhotoReconstructor(model).sparse
    focal, principal = default_camera(torch.as_tensor(loaded.image_size))
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        points = sparse.evaluate(as_t(loaded.identity), as_t(loaded.expression), as_t(loaded.rotation),
                                 as_t(loaded.translation))
        pixels = project_points(points, focal, principal).numpy() - 0.5
    error = np.linalg.norm(pixels - loaded.points, axis=-1).mean(1)
    assert float(error.max()) < 6.0, error
    assert describe(loaded).startswith("7 faces from 4 sources (talk1.mp4: 4")


def test_label_file_round_trip_and_bad_files(labels, tmp_path):
    loaded = PseudoLabels.load(labels[0])
    both = concatenate([loaded, loaded])
    path = both.save(tmp_path / "twice.npz")
    again = PseudoLabels.load(path)
    assert again.sources == loaded.sources * 2 and np.array_equal(again.points, both.points)
    assert not list(tmp_path.glob("*.tmp*"))
    np.savez(tmp_path / "other.npz", points=np.zeros(3))
    with pytest.raises(ValueError, match="not a facecast pseudo-label file"):
        PseudoLabels.load(tmp_path / "other.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 nonsense")
    with pytest.raises(ValueError, match="broken.npz"):
        PseudoLabels.load(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="expression must have shape"):
        PseudoLabels(**{**{k: getattr(loaded, k) for k in ("points", "image_size", "identity", "rotation",
                                                            "translation")},
                        "expression": loaded.expression[:, :52], "sources": loaded.sources})


def test_label_with_no_usable_input_is_one_line_error(tmp_path):
    (tmp_path / "grey.png").write_bytes(_grey_png())
    result = runner.invoke(app, ["label", str(tmp_path / "grey.png"), "-o", str(tmp_path / "l.npz")])
    assert result.exit_code == 2 and "no face found in any input" in result.output
    assert not (tmp_path / "l.npz").exists()
    result = runner.invoke(app, ["label", str(tmp_path / "grey.png"), "-o", str(tmp_path / "l.json")])
    assert result.exit_code == 2 and "written as .npz" in result.output


def _grey_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_batches_mix_real_faces_at_the_configured_fraction(labels, model):
    config = TrainConfig(steps=2, batch=8, log_every=100, regressor=LANDMARKS_ONLY, pseudo_labels=str(labels[0]),
                         pseudo_fraction=0.25, weights=LossWeights(adversarial=0.0))
    trainer = Trainer(config, model, None, _mapping())
    batch = trainer.batch()
    real = torch.as_tensor(PseudoLabels.load(labels[0]).points, dtype=torch.float32) + 0.5
    is_real = [(bool((real - p).abs().amax((1, 2)).min() < 1e-4)) for p in batch.points]
    assert batch.batch_size == 8 and is_real == [False] * 6 + [True] * 2


def test_fine_tuning_from_weights_fits_the_real_faces(labels, model, tmp_path):
    """Starting from the shipped weights, a short run lowers the supervised error on the pseudo-labels."""
    config = TrainConfig(steps=40, batch=16, lr=5e-4, log_every=100, regressor=LANDMARKS_ONLY,
                         pseudo_labels=str(labels[0]), pseudo_fraction=0.5, init_weights=str(shipped_regressor_path()),
                         weights=LossWeights(adversarial=0.0))
    trainer = Trainer(config, model, None, _mapping())
    shipped = load_regressor(shipped_regressor_path())
    for name, tensor in shipped.state_dict().items():
        assert torch.equal(trainer.regressor.state_dict()[name], tensor), name
    real = trainer.pseudo
    before = _expression_error(shipped, real)
    result = train(config, model, log=lambda _: None)
    after = _expression_error(result.regressor, real)
    assert after < 0.7 * before, (before, after)
    meta_path = save_regressor(result.regressor, tmp_path / "tuned.safetensors")
    assert load_regressor(meta_path).config == shipped.config


def test_pseudo_label_configs_are_checked(labels, model, tmp_path):
    with pytest.raises(TrainConfigError, match="pseudo_fraction"):
        TrainConfig(pseudo_fraction=1.0)
    with pytest.raises(TrainConfigError, match="image_branch false"):
        TrainConfig(pseudo_labels=str(labels[0]))
    (tmp_path / "nope.npz").write_bytes(b"")
    with pytest.raises(TrainConfigError, match="pseudo_labels: .*nope.npz"):
        Trainer(TrainConfig(regressor=LANDMARKS_ONLY, pseudo_labels=str(tmp_path / "nope.npz")), model, None,
                _mapping())
    other = replace(LANDMARKS_ONLY, landmark_hidden=64)
    with pytest.raises(TrainConfigError, match="another regressor config"):
        Trainer(TrainConfig(regressor=other, init_weights=str(shipped_regressor_path())), model, None, _mapping())
    assert json.loads(TrainConfig(regressor=LANDMARKS_ONLY, pseudo_labels="x.npz").to_json())["pseudo_fraction"] == 0.5


def _mapping():
    from facecast.recon.landmarks.correspondence import mediapipe478_mapping

    return mediapipe478_mapping()


def _expression_error(regressor, batch) -> float:
    with torch.no_grad():
        output = regressor.split(regressor.eval()(None, batch.inputs.landmarks))
    from facecast.recon.learn.regressor import coeffs_from_output

    coeffs = coeffs_from_output(output, batch.inputs, regressor.config)
    return float((coeffs.expression - batch.truth.expression).abs().mean()
                 + (coeffs.identity - batch.truth.identity).abs().mean())
