"""Eye gaze read from the iris landmarks (Live Link's eye-angle columns, issue #16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.recon.fit.gaze import REST_DEGREES, EyeRig, eye_gaze
from facecast.recon.fit.tracking import FrameLandmarks, TrackConfig, VideoTracker
from facecast.recon.landmarks.correspondence import SURFACE_SKIN, mediapipe478_mapping
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs, project_points
from facecast.recon.model.eyes import eye_layout
from facecast.recon.model.geometry import axis_angle_to_matrix
from facecast.render.shading import ambient_light


@pytest.fixture(scope="module")
def sparse(model):
    return SparseLandmarks.build(model, mediapipe478_mapping())


def _turn(yaw: float, pitch: float) -> torch.Tensor:
    """The head angles' rotation: ``Ry(yaw) Rx(pitch)`` (degrees; pitch positive down)."""
    y, p = np.radians(yaw), np.radians(pitch)
    about_y = torch.tensor([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    about_x = torch.tensor([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return (about_y @ about_x).double()


def _looking(sparse, frames, gaze_deg, head_yaw_deg=10.0):
    """Landmarks of a head turned by ``head_yaw_deg`` whose eyes look ``gaze_deg`` = (yaw, pitch) relative to it:
    the model's points with each eye's iris points turned about its eyeball centre."""
    gen = torch.Generator().manual_seed(5)
    identity = torch.randn(1, 100, generator=gen).expand(frames, -1) * 0.7
    rotation = torch.tensor([[0.0, np.radians(head_yaw_deg), 0.0]]).expand(frames, 3)
    translation = torch.tensor([[0.5, -1.0, -45.0]]).expand(frames, 3)
    size = torch.tensor([[480, 640]] * frames)
    from facecast.recon.fit.landmark_fit import default_camera

    focal, principal = default_camera(size)
    with torch.no_grad():
        rest = sparse.evaluate(identity[:1], torch.zeros(1, 53), torch.zeros(1, 3), torch.zeros(1, 3))[0].double()
    vertices = sparse.model.data.neutral.astype(np.float64)  # the template's eye centres, moved like the iris
    centres = torch.as_tensor(eye_layout(sparse.model.data, vertices).centres)
    template = sparse.evaluate(torch.zeros(1, 100), torch.zeros(1, 53), torch.zeros(1, 3), torch.zeros(1, 3))[0]
    iris = np.flatnonzero(sparse.mapping.surface != SURFACE_SKIN)
    points = rest.clone()
    turn = _turn(*gaze_deg)
    for centre in centres:
        own = iris[(template[iris].double() - centre).norm(dim=1).numpy() < 2.0]
        shift = rest[own].mean(0) - template[own].double().mean(0)  # the identity moves the eye
        points[own] = (rest[own] - centre - shift) @ turn.T + centre + shift
    posed = points[None] @ axis_angle_to_matrix(rotation.double()).transpose(1, 2) + translation[:, None].double()
    pixels = project_points(posed.float(), focal, principal)
    coeffs = FaceCoeffs(identity.clone(), torch.zeros(frames, 53), rotation.clone(), translation.clone(), focal,
                        principal, ambient_light(frames, 1.0), torch.full((frames, 1, 3), 0.6))
    return coeffs, pixels, size


@pytest.mark.parametrize("gaze", [(15.0, 0.0), (-12.0, 8.0), (0.0, -10.0)])
def test_the_gaze_of_known_iris_points_is_recovered(sparse, gaze):
    coeffs, pixels, _ = _looking(sparse, 2, gaze)
    angles = np.degrees(eye_gaze(sparse, EyeRig.build(sparse), coeffs, pixels))
    # both eyes look the same way, in the head's frame, measured from where MediaPipe sees an eye at rest
    for eye, rest in zip((0, 3), REST_DEGREES):
        np.testing.assert_allclose(angles[:, eye:eye + 2], np.broadcast_to(np.subtract(gaze, rest), (2, 2)), atol=1.0)
    assert np.all(angles[:, [2, 5]] == 0)


def test_the_tracker_reports_the_gaze_with_the_right_sign(sparse):
    """Through the whole accurate tracker (pose and identity fitted, not given)."""
    frames = 12
    coeffs, pixels, size = _looking(sparse, frames, (14.0, 0.0))
    weight = torch.where(torch.as_tensor(sparse.mapping.surface == SURFACE_SKIN), 1.0, 0.3)  # as `track` weighs
    stream = [FrameLandmarks(i, i / 30, tuple(size[i].tolist()), pixels[i], weight) for i in range(frames)]
    out = list(VideoTracker(sparse, TrackConfig(identity_frames=4, identity_window=8, chunk=6)).run(iter(stream)))
    gaze = np.degrees(np.stack([f.gaze for f in out])) + np.ravel([[*rest, 0] for rest in REST_DEGREES])
    assert (gaze[:, [0, 3]] > 9).all() and (gaze[:, [0, 3]] < 19).all(), gaze[:, [0, 3]]  # looking to +x
    assert (np.abs(gaze[:, [1, 4]]) < 4).all()
    still = list(VideoTracker(sparse, TrackConfig(identity_frames=4, identity_window=8, chunk=6)).run(
        iter(FrameLandmarks(i, i / 30, tuple(size[i].tolist()), p, weight)
             for i, p in enumerate(_looking(sparse, frames, (0.0, 0.0))[1]))))
    rest = np.ravel([[*r, 0] for r in REST_DEGREES])
    assert np.abs(np.degrees(np.stack([f.gaze for f in still])) + rest).max() < 3
