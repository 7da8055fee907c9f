"""fast / refine modes: the shipped regressor, alone and as the fitter's warm start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.recon.fit.tracking import FrameLandmarks, TrackConfig, VideoTracker
from facecast.recon.landmarks.detector import DetectedFace, faces_from_points
from facecast.recon.learn.inputs import prepare_inputs
from facecast.recon.learn.regressor import WeightsError, load_regressor, read_metadata, shipped_regressor_path
from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs, project_points
from facecast.recon.photo import PhotoConfig, PhotoReconstructor

SIZE = (480, 640)


def _truth(batch: int, seed: int):
    """Faces of the training distribution's kind: identity N(0, 0.8), 4 active channels, turned heads."""
    gen = torch.Generator().manual_seed(seed)
    identity = torch.randn(batch, 100, generator=gen) * 0.8
    expression = torch.zeros(batch, 53)
    for b in range(batch):
        expression[b, torch.randperm(53, generator=gen)[:4]] = torch.rand(4, generator=gen)
    rotation = (torch.rand(batch, 3, generator=gen) * 2 - 1) * torch.tensor([0.3, 0.6, 0.15])
    translation = torch.tensor([0.0, 0.0, -60.0]) + torch.randn(batch, 3, generator=gen) * torch.tensor([2, 2, 5])
    return identity, expression, rotation, translation


def _faces(reconstructor: PhotoReconstructor, truth, noise: float = 0.7, seed: int = 0) -> list[DetectedFace]:
    """The true MediaPipe points of the faces, projected with the fitter's camera, plus noise (detector pixels)."""
    from facecast.recon.fit.landmark_fit import default_camera

    batch = truth[0].shape[0]
    focal, principal = default_camera(torch.tensor([SIZE] * batch))
    with torch.no_grad():
        pixels = project_points(reconstructor.sparse.evaluate(*truth), focal, principal).double().numpy()
    pixels += noise * np.random.default_rng(seed).standard_normal(pixels.shape) - PIXEL_OFFSET
    return faces_from_points(pixels)


def _rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from facecast.recon.model.geometry import axis_angle_to_matrix

    relative = axis_angle_to_matrix(a).transpose(1, 2) @ axis_angle_to_matrix(b)
    return torch.rad2deg(torch.arccos(((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)))


def _residual_px(reconstructor: PhotoReconstructor, coeffs: FaceCoeffs, faces: list[DetectedFace]) -> float:
    with torch.no_grad():
        points = project_points(reconstructor.sparse.evaluate(coeffs.identity, coeffs.expression, coeffs.rotation,
                                                              coeffs.translation), coeffs.focal, coeffs.principal)
    target = torch.tensor(np.stack([f.points for f in faces]) + PIXEL_OFFSET, dtype=points.dtype)
    return float((points - target).norm(dim=-1).mean())


@pytest.fixture(scope="module")
def fast(model) -> PhotoReconstructor:
    return PhotoReconstructor(model, config=PhotoConfig(mode="fast"))


def test_shipped_weights_say_what_trained_them():
    meta = read_metadata(shipped_regressor_path())
    assert "synthetic" in meta["trained_on"] and meta["format"] == "facecast-regressor-1"
    assert not load_regressor(shipped_regressor_path()).config.image_branch


def test_fast_mode_recovers_pose_and_expression(fast):
    truth = _truth(24, seed=11)
    faces = _faces(fast, truth)
    results = fast.fit(faces, [SIZE] * len(faces))
    coeffs = FaceCoeffs.cat([r.coeffs for r in results])
    rotation = _rotation_error_deg(coeffs.rotation, truth[2])
    mae, zeros = float((coeffs.expression - truth[1]).abs().mean()), float(truth[1].abs().mean())
    assert float(rotation.mean()) < 3.0, rotation
    assert mae < zeros, (mae, zeros)  # better than answering "no expression"
    # it explains the landmarks to a few pixels (faces ~200 px wide)
    assert _residual_px(fast, coeffs, faces) < 6.0


def test_refine_mode_lowers_the_landmark_error_of_fast(model, fast):
    refine = PhotoReconstructor(model, config=PhotoConfig(mode="refine"))
    truth = _truth(8, seed=12)
    faces = _faces(fast, truth)
    fast_coeffs = FaceCoeffs.cat([r.coeffs for r in fast.fit(faces, [SIZE] * 8)])
    refined = FaceCoeffs.cat([r.coeffs for r in refine.fit(faces, [SIZE] * 8)])
    assert _residual_px(refine, refined, faces) < 0.7 * _residual_px(fast, fast_coeffs, faces)


def test_modes_reject_bad_settings(model, tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        PhotoConfig(mode="quick")
    missing = tmp_path / "none.safetensors"
    with pytest.raises(WeightsError, match="none.safetensors"):
        PhotoReconstructor(model, config=PhotoConfig(mode="fast", regressor=missing))
    face = DetectedFace(np.zeros(4), 1.0, np.random.default_rng(0).uniform(100, 300, (478, 2)), "mediapipe478")
    with pytest.raises(ValueError, match="images are needed"):
        prepare_inputs([face], None, 96, 1.6, with_crops=True, sizes=[SIZE])
    inputs = prepare_inputs([face], None, 96, 1.6, with_crops=False, sizes=[SIZE])
    assert inputs.crops is None and inputs.landmarks.shape == (1, 478, 2)


def test_fast_tracker_shares_one_identity_and_follows_the_frames(model, fast):
    with pytest.raises(ValueError, match="needs a regressor"):
        VideoTracker(fast.sparse, TrackConfig(mode="fast"))
    jaw = list(model.expression_names).index("jawOpen")
    identity, _, _, _ = _truth(1, seed=13)
    frames = 12
    t = torch.arange(frames, dtype=torch.float32)
    expression = torch.zeros(frames, 53)
    expression[:, jaw] = 0.5 + 0.4 * torch.sin(t / 2)  # one channel moving
    rotation = torch.stack([0.1 * torch.sin(t / 3), 0.4 * torch.sin(t / 4), torch.zeros(frames)], 1)
    translation = torch.tensor([[0.0, 0.0, -60.0]]).expand(frames, 3)
    faces = _faces(fast, (identity.expand(frames, -1), expression, rotation, translation), seed=1)
    stream = [FrameLandmarks(k, k / 30, SIZE, torch.tensor(f.points + PIXEL_OFFSET, dtype=torch.float32))
              for k, f in enumerate(faces)]
    stream[5] = FrameLandmarks(5, 5 / 30, SIZE, None)  # a gap holds the last pose
    tracker = VideoTracker(fast.sparse, TrackConfig(mode="fast", chunk=4, identity_frames=4), fast.regressor)
    tracked = list(tracker.run(iter(stream)))
    assert [f.index for f in tracked] == list(range(frames)) and tracker.gaps == [5]
    coeffs = FaceCoeffs.cat([f.coeffs for f in tracked])
    assert torch.equal(coeffs.identity, coeffs.identity[:1].expand(frames, -1))
    assert torch.equal(coeffs.expression[5], coeffs.expression[4])
    seen = [k for k in range(frames) if k != 5]
    assert float(_rotation_error_deg(coeffs.rotation[seen], rotation[seen]).mean()) < 3.0
    moving = coeffs.expression[seen, jaw]
    assert float(np.corrcoef(moving.numpy(), expression[seen, jaw].numpy())[0, 1]) > 0.8
