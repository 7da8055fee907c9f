"""The regressor's ONNX twin gives the same numbers as the PyTorch network (needs facecast[onnx])."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from facecast.recon.learn.onnx_twin import OnnxRegressor, export_onnx  # noqa: E402
from facecast.recon.learn.regressor import Regressor, RegressorConfig, WeightsError  # noqa: E402

CONFIGS = {
    "two branches": RegressorConfig(crop_size=48, widths=(8, 16, 24, 32), blocks=(1, 2, 1), features=48,
                                    landmark_hidden=64),
    "landmarks only": RegressorConfig(image_branch=False, features=48, landmark_hidden=64),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_onnx_matches_torch_on_random_inputs(tmp_path, name):
    config = CONFIGS[name]
    torch.manual_seed(0)
    regressor = Regressor(config)
    regressor.fit_landmark_whitening(torch.rand(200, 478, 2) * 2 - 1)  # buffers are part of the export
    with torch.no_grad():
        for p in regressor.head.parameters():
            p.normal_(0.0, 0.05)
    regressor.train()  # export must not depend on the mode the caller left it in
    path = export_onnx(regressor, tmp_path / "regressor.onnx")
    twin = OnnxRegressor(path)
    assert twin.config == config and regressor.training
    regressor.eval()
    for batch in (1, 5):  # the batch dimension is dynamic
        crops = torch.rand(batch, 3, config.crop_size, config.crop_size)
        landmarks = torch.rand(batch, 478, 2) * 2 - 1
        with torch.no_grad():
            expected = regressor(crops if config.image_branch else None, landmarks)
        np.testing.assert_allclose(twin(crops, landmarks).numpy(), expected.numpy(), atol=1e-4, rtol=0)


def test_onnx_twin_predicts_the_same_coeffs(tmp_path):
    from facecast.recon.landmarks.detector import faces_from_points

    config = CONFIGS["two branches"]
    torch.manual_seed(1)
    regressor = Regressor(config).eval()
    twin = OnnxRegressor(export_onnx(regressor, tmp_path / "r.onnx"))
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, (478, 2)) * 80 + 60
    face = faces_from_points(points[None], score=1.0)[0]
    image = rng.integers(0, 255, (200, 240, 3), dtype=np.uint8)
    a, b = regressor.predict([face], [image]), twin.predict([face], [image])
    for name in ("identity", "expression", "rotation", "translation", "focal", "principal", "lighting", "albedo"):
        np.testing.assert_allclose(getattr(b, name).numpy(), getattr(a, name).numpy(), atol=1e-3, rtol=0)


def test_onnx_twin_rejects_foreign_models(tmp_path):
    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), str(tmp_path / "plain.onnx"), dynamo=False)
    with pytest.raises(WeightsError, match="not a facecast regressor export"):
        OnnxRegressor(tmp_path / "plain.onnx")
