"""Cameras: pixel conventions, the front camera, OpenCV agreement, batching and errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facecast.render.cameras import OrthographicCamera, PerspectiveCamera


def test_front_camera_puts_the_origin_at_the_image_centre_and_y_up():
    camera = PerspectiveCamera.front((100, 120), distance=50.0, focal=200.0)
    points = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 10.0]]])
    pixels = camera.project(points)[0]
    torch.testing.assert_close(pixels[0], torch.tensor([60.0, 50.0]))
    torch.testing.assert_close(pixels[1], torch.tensor([64.0, 50.0]))  # world +x -> image right
    torch.testing.assert_close(pixels[2], torch.tensor([60.0, 46.0]))  # world +y -> image up
    depth = camera.to_screen(points)[0, :, 2]
    torch.testing.assert_close(depth, torch.tensor([50.0, 50.0, 50.0, 40.0]))  # +z is towards the camera


def test_orthographic_front_camera():
    camera = OrthographicCamera.front((64, 64), scale=4.0, distance=30.0)
    screen = camera.to_screen(torch.tensor([[[2.0, -1.0, 5.0]]]))[0, 0]
    torch.testing.assert_close(screen, torch.tensor([32.0 + 8.0, 32.0 + 4.0, 25.0]))
    assert not camera.is_perspective and PerspectiveCamera.is_perspective


def test_projection_matches_opencv_with_half_pixel_shift():
    g = torch.Generator().manual_seed(0)
    k = np.array([[300.0, 0.0, 63.2], [0.0, 310.0, 47.9], [0.0, 0.0, 1.0]])
    rvec = np.array([0.1, -0.2, 0.05])
    tvec = np.array([0.5, -0.3, 40.0])
    points = (torch.rand(1, 20, 3, generator=g, dtype=torch.float64) - 0.5) * 10
    expected, _ = cv2.projectPoints(points[0].numpy(), rvec, tvec, k, None)
    rotation = torch.as_tensor(cv2.Rodrigues(rvec)[0])[None]
    camera = PerspectiveCamera.from_opencv(torch.as_tensor(k)[None], rotation, torch.as_tensor(tvec)[None],
                                           image_size=(96, 128))
    ours = camera.project(points)[0]
    torch.testing.assert_close(ours - 0.5, torch.as_tensor(expected[:, 0]), rtol=0, atol=1e-9)


def test_batched_parameters_and_expand():
    camera = PerspectiveCamera.front((32, 32), 50.0, 100.0, batch_size=1)
    wide = camera.expand(3)
    assert wide.batch_size == 3 and camera.expand(1) is camera
    points = torch.zeros(3, 5, 3)
    assert camera.project(points).shape == (3, 5, 2)
    focal = torch.tensor([[100.0, 100.0], [200.0, 200.0]])
    two = PerspectiveCamera(rotation=torch.eye(3).expand(2, 3, 3), translation=torch.tensor([[0.0, 0, 10]] * 2),
                            principal_point=torch.full((2, 2), 16.0), focal=focal, image_size=(32, 32))
    pixels = two.project(torch.tensor([[[1.0, 1.0, 0.0]]]).expand(2, 1, 3))
    torch.testing.assert_close(pixels[:, 0, 0], torch.tensor([16.0 + 10.0, 16.0 + 20.0]))
    assert two.to(dtype=torch.float64).focal.dtype == torch.float64


def test_camera_errors():
    with pytest.raises(ValueError, match="image_size must be positive"):
        PerspectiveCamera.front((0, 32), 50.0, 100.0)
    with pytest.raises(ValueError, match="camera batch sizes differ"):
        PerspectiveCamera(rotation=torch.eye(3).expand(2, 3, 3), translation=torch.zeros(3, 3),
                          principal_point=torch.zeros(2, 2), focal=torch.ones(2, 2), image_size=(8, 8))
    with pytest.raises(ValueError, match=r"focal must have shape \(B, 2\)"):
        PerspectiveCamera(rotation=torch.eye(3)[None], translation=torch.zeros(1, 3),
                          principal_point=torch.zeros(1, 2), focal=torch.ones(1, 3), image_size=(8, 8))
    camera = PerspectiveCamera.front((8, 8), 50.0, 100.0, batch_size=2)
    with pytest.raises(ValueError, match="does not match points batch 3"):
        camera.project(torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match=r"points must have shape \(B, N, 3\)"):
        camera.project(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="does not match batch 3"):
        camera.expand(3)
