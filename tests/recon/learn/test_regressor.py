"""The coefficient regressor: shapes and errors, pose parametrisation, predict, safetensors round trip."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from facecast.recon.landmarks.detector import DetectedFace
from facecast.recon.learn.inputs import (
    CropFrame,
    RegressorInputs,
    crop_from_pose,
    pose_from_crop,
    prepare_inputs,
    ray_rotation,
)
from facecast.recon.learn.regressor import (
    OUTPUT_LAYOUT,
    Regressor,
    RegressorConfig,
    WeightsError,
    load_regressor,
    read_metadata,
    save_regressor,
)
from facecast.recon.model.coeffs import FaceCoeffs

SMALL = RegressorConfig(crop_size=32, widths=(8, 16, 24), blocks=(1, 1), features=32, landmark_hidden=64)


def _randomised(config: RegressorConfig, seed: int = 0) -> Regressor:
    """A regressor whose head is not at its (mostly zero) initialisation, with a landmark whitening."""
    torch.manual_seed(seed)
    regressor = Regressor(config)
    regressor.fit_landmark_whitening(torch.rand(config.landmark_components + 50, 478, 2) * 2 - 1)
    with torch.no_grad():
        for p in regressor.head.parameters():
            p.normal_(0.0, 0.05)
    return regressor.eval()


def _frame(batch: int, size: int = 32, seed: int = 0) -> CropFrame:
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(batch, 478, 2, generator=gen) * 120 + torch.tensor([[40.0, 200.0]])
    return CropFrame.around(points, torch.tensor([[480, 640]] * batch), size, 1.6)


def test_forward_shapes_and_output_layout():
    regressor = _randomised(SMALL)
    crops, landmarks = torch.rand(3, 3, 32, 32), torch.rand(3, 478, 2) * 2 - 1
    with torch.no_grad():
        flat = regressor(crops, landmarks)
    assert flat.shape == (3, SMALL.output_size) == (3, 100 + 53 + 3 + 2 + 1 + 27 + 24)
    out = regressor.split(flat)
    assert out.identity.shape == (3, 100) and out.expression.shape == (3, 53)
    assert out.rotation_local.shape == (3, 3) and out.position.shape == (3, 2) and out.log_depth.shape == (3,)
    assert out.lighting.shape == (3, 9, 3) and out.albedo.shape == (3, 8, 3)
    assert float(out.expression.min()) >= 0 and float(out.expression.max()) <= 1
    assert float(out.albedo.min()) >= 0 and float(out.albedo.max()) <= 1
    assert [name for name, _ in OUTPUT_LAYOUT][:2] == ["identity", "expression"]


def test_fresh_regressor_starts_at_default_light_and_albedo():
    from facecast.recon.model.albedo import DEFAULT_COLOURS
    from facecast.render.shading import ambient_light

    regressor = Regressor(SMALL).eval()
    with torch.no_grad():
        out = regressor.split(regressor(torch.rand(2, 3, 32, 32), torch.zeros(2, 478, 2)))
    torch.testing.assert_close(out.lighting, ambient_light(2))
    torch.testing.assert_close(out.albedo[0], torch.as_tensor(DEFAULT_COLOURS, dtype=torch.float32).clamp(0.02, 0.98))


@pytest.mark.parametrize("crops, landmarks, match", [
    (torch.rand(2, 3, 32, 32), torch.rand(2, 68, 2), r"landmarks must have shape \(B, 478, 2\)"),
    (torch.rand(2, 3, 64, 64), torch.rand(2, 478, 2), r"crops must have shape \(2, 3, 32, 32\)"),
    (torch.rand(3, 3, 32, 32), torch.rand(2, 478, 2), r"crops must have shape \(2, 3, 32, 32\)"),
    (None, torch.rand(2, 478, 2), "crops .* are required"),
])
def test_forward_rejects_wrong_shapes(crops, landmarks, match):
    with pytest.raises(ValueError, match=match):
        Regressor(SMALL)(crops, landmarks)


def test_landmark_only_regressor_takes_no_crops():
    regressor = Regressor(RegressorConfig(image_branch=False, landmark_hidden=32, features=32))
    assert regressor.crop_encoder is None
    assert regressor(None, torch.rand(2, 478, 2)).shape == (2, regressor.config.output_size)


@pytest.mark.parametrize("changes, match", [
    (dict(image_branch=False, landmark_branch=False), "image_branch or landmark_branch"),
    (dict(blocks=(1,)), "one count per stage"),
    (dict(crop_size=8), "crop_size"),
    (dict(albedo_regions=3), "albedo_regions"),
])
def test_config_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        RegressorConfig(**changes)


def test_landmark_whitening_decorrelates_training_landmarks():
    gen = torch.Generator().manual_seed(0)
    # landmarks dominated by one large "pose" direction, plus small independent detail
    pose = torch.randn(600, 1, 1, generator=gen) * torch.linspace(-1, 1, 956).reshape(1, 478, 2)
    landmarks = pose + 0.01 * torch.randn(600, 478, 2, generator=gen)
    regressor = Regressor(replace(SMALL, landmark_components=16))
    regressor.fit_landmark_whitening(landmarks)
    features = (landmarks.reshape(600, -1) - regressor.landmark_mean) @ regressor.landmark_basis
    covariance = torch.cov(features.T.double())
    torch.testing.assert_close(covariance, torch.eye(16, dtype=torch.float64), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="N > 16"):
        regressor.fit_landmark_whitening(landmarks[:10])


def test_default_regressor_is_cpu_sized():
    regressor = Regressor()
    count = sum(p.numel() for p in regressor.parameters())
    cnn = sum(p.numel() for p in regressor.crop_encoder.parameters())
    assert 300_000 <= cnn <= 1_000_000 and count < 1_500_000, (cnn, count)


def test_ray_rotation_maps_the_optical_axis_onto_the_ray():
    direction = torch.tensor([[0.0, 0.0, -1.0], [0.3, -0.2, -1.0], [1e-9, 0.0, -1.0], [-0.5, 0.6, -0.7]])
    matrix = ray_rotation(direction)
    torch.testing.assert_close(matrix @ torch.tensor([0.0, 0.0, -1.0]),
                               torch.nn.functional.normalize(direction, dim=-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(matrix[0], torch.eye(3))


def test_pose_parametrisation_round_trips_and_centres_the_anchor():
    frame = _frame(4)
    gen = torch.Generator().manual_seed(1)
    rotation = (torch.rand(4, 3, generator=gen) - 0.5) * 1.2
    translation = torch.tensor([[3.0, -4.0, -55.0]]) + torch.randn(4, 3, generator=gen)
    anchor = torch.tensor([0.0, 0.2, 9.8])
    local, position, log_depth = crop_from_pose(rotation, translation, frame, anchor, 12.0)
    back_r, back_t = pose_from_crop(local, position, log_depth, frame, anchor, 12.0)
    torch.testing.assert_close(back_r, rotation, atol=1e-5, rtol=0)
    torch.testing.assert_close(back_t, translation, atol=1e-4, rtol=0)
    # the anchor's projection lands at its crop position
    from facecast.recon.model.coeffs import project_points
    from facecast.recon.model.geometry import apply_rigid

    focal, principal = frame.camera()
    pixel = project_points(apply_rigid(anchor.expand(4, 1, 3), rotation, translation), focal, principal)
    torch.testing.assert_close(frame.normalise(pixel)[:, 0], position, atol=1e-4, rtol=0)


def test_crop_frame_normalises_and_checks_shapes():
    frame = _frame(2, size=64)
    points = torch.rand(2, 5, 2, generator=torch.Generator().manual_seed(0)) * 100
    torch.testing.assert_close(frame.to_image(frame.normalise(points)), points, atol=1e-4, rtol=0)
    corner = frame.normalise(frame.origin[:, None])
    torch.testing.assert_close(corner, torch.full((2, 1, 2), -1.0), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="scale must have shape"):
        CropFrame(torch.zeros(2, 2), torch.ones(3), 32, torch.tensor([[10, 10]] * 2))
    with pytest.raises(ValueError, match=r"landmarks must have shape \(2, 478, 2\)"):
        RegressorInputs(None, torch.zeros(2, 68, 2), frame)


def _detected(seed: int, size=(240, 320)) -> tuple[DetectedFace, np.ndarray]:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 1, (478, 2)) * [90, 110] + [100, 60]
    box = np.concatenate([points.min(0), points.max(0)])
    return DetectedFace(box, float("nan"), points, "mediapipe478"), rng.integers(0, 255, (*size, 3), dtype=np.uint8)


def test_predict_from_detected_faces_returns_coeffs_in_the_fitter_camera():
    regressor = _randomised(SMALL)
    (f0, i0), (f1, i1) = _detected(0), _detected(1, size=(300, 200))
    coeffs = regressor.predict([f0, f1], [i0, i1])
    assert isinstance(coeffs, FaceCoeffs) and coeffs.batch_size == 2
    torch.testing.assert_close(coeffs.focal, torch.tensor([1.2 * 320, 1.2 * 300]))
    torch.testing.assert_close(coeffs.principal, torch.tensor([[160.0, 120.0], [100.0, 150.0]]))
    assert bool((coeffs.translation[:, 2] < 0).all())  # in front of the camera
    one = regressor.predict([f1], [i1])  # batching does not change a face's answer
    torch.testing.assert_close(one.expression[0], coeffs.expression[1], atol=1e-5, rtol=0)


def test_prepare_inputs_errors():
    face, image = _detected(0)
    with pytest.raises(ValueError, match="one face per image"):
        prepare_inputs([face], [image, image], 32, 1.6)
    with pytest.raises(ValueError, match="uint8"):
        prepare_inputs([face], [image.astype(np.float32)], 32, 1.6)
    ibug = DetectedFace(face.box, 1.0, face.points[:68], "ibug68")
    with pytest.raises(ValueError, match="mediapipe478"):
        prepare_inputs([ibug], [image], 32, 1.6)
    inputs = prepare_inputs([face], [image], 32, 1.6)
    assert inputs.crops.shape == (1, 3, 32, 32) and inputs.landmarks.shape == (1, 478, 2)
    assert float(inputs.landmarks.abs().max()) < 1.0  # the whole face lies inside the crop


def test_safetensors_round_trip_gives_identical_outputs(tmp_path):
    regressor = _randomised(SMALL, seed=3)
    path = save_regressor(regressor, tmp_path / "r.safetensors", {"trained_on": "unit test"})
    loaded = load_regressor(path)
    assert loaded.config == SMALL and not loaded.training
    crops, landmarks = torch.rand(2, 3, 32, 32), torch.rand(2, 478, 2) * 2 - 1
    with torch.no_grad():
        assert torch.equal(regressor(crops, landmarks), loaded(crops, landmarks))
    meta = read_metadata(path)
    assert meta["trained_on"] == "unit test" and RegressorConfig.from_json(meta["regressor_config"]) == SMALL


def test_load_regressor_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(WeightsError, match="do not exist"):
        load_regressor(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_regressor(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="not facecast regressor weights"):
        load_regressor(tmp_path / "other.safetensors")
