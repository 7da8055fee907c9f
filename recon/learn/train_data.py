"""Synthetic training batches with known truth for the regressor.

A face: identity ``~ N(0, identity_std^2)`` per mode (clipped to +-2.5 sigma-units),
``expression_channels`` random blendshapes of 53 set uniformly in [0, 1] (the rest 0),
pitch / yaw / roll uniform in +-``pitch`` / ``yaw`` / ``roll`` degrees (composed as
``Rz(roll) Ry(yaw) Rx(pitch)``, like ``benchmarks/synthetic.py``), the anchor point at
a depth uniform in ``depth`` cm and projecting uniformly inside the middle
``placement`` of the image. Its 478 MediaPipe landmarks come from
:class:`~facecast.recon.landmarks.sparse.SparseLandmarks` through the fitter's camera, plus
Gaussian pixel noise; the crop is built from the noisy points exactly as at inference.
When an image is needed, the crop is rendered straight into the crop camera by
:class:`~facecast.recon.learn.synthetic.SyntheticRenderer`'s head (UV texture, eyes, teeth) under
a random directional light over a random flat background, ``supersample``-times larger
and box-filtered down (as :func:`~facecast.recon.fit.photometric.crop_images` area-filters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.learn.inputs import CropFrame, RegressorInputs
from facecast.recon.model.albedo import DEFAULT_COLOURS
from facecast.recon.model.coeffs import FaceCoeffs, coeffs_camera, project_points
from facecast.recon.model.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from facecast.render.shading import ambient_light, directional_light

RENDER_CHUNK = 16  # faces rendered at once (bounds memory for large pools)


@dataclass(frozen=True)
class SyntheticConfig:
    """Distribution of synthetic training faces (see the module docstring)."""

    image_size: tuple[int, int] = (480, 640)
    identity_std: float = 0.8
    expression_channels: int = 4
    pitch: float = 20.0
    yaw: float = 40.0
    roll: float = 10.0
    depth: tuple[float, float] = (40.0, 90.0)
    placement: float = 0.6
    pixel_noise: float = 1.0
    supersample: int = 2

    def __post_init__(self) -> None:
        for name in ("image_size", "depth"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.image_size) != 2 or len(self.depth) != 2:
            raise ValueError(f"image_size (H, W) and depth (low, high) need 2 numbers each, "
                             f"got {self.image_size}, {self.depth}")
        if not 0 <= self.expression_channels <= 53:
            raise ValueError(f"expression_channels must be in [0, 53], got {self.expression_channels}")
        if not (0 < self.depth[0] <= self.depth[1]) or not 0 <= self.placement <= 1:
            raise ValueError("depth must be 0 < low <= high cm and placement in [0, 1]")
        if self.supersample < 1 or min(self.image_size) < 32:
            raise ValueError("supersample must be >= 1 and the image at least 32 px")


@dataclass
class TrainBatch:
    """B synthetic faces.

    truth: the true coefficients (ambient light, default albedo: the render's light and
    texture are not in the model's albedo space). inputs: what the regressor sees.
    points ``(B, 478, 2)``: the noisy landmarks in image pixels (renderer convention).
    """

    truth: FaceCoeffs
    inputs: RegressorInputs
    points: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.truth.batch_size

    def select(self, index: torch.Tensor) -> TrainBatch:
        return TrainBatch(self.truth.select(index), self.inputs.select(index), self.points[index])

    @staticmethod
    def cat(items: list[TrainBatch]) -> TrainBatch:
        """Concatenate along the batch."""
        return TrainBatch(FaceCoeffs.cat([b.truth for b in items]), RegressorInputs.cat([b.inputs for b in items]),
                          torch.cat([b.points for b in items]))


def random_rotations(count: int, config: SyntheticConfig, gen: torch.Generator) -> torch.Tensor:
    """``(B, 3)`` axis-angle rotations with uniform pitch, yaw and roll."""
    limits = torch.tensor([config.pitch, config.yaw, config.roll])
    pitch, yaw, roll = torch.deg2rad((2 * torch.rand(count, 3, generator=gen) - 1) * limits).unbind(1)
    zero = torch.zeros_like(pitch)
    matrix = (axis_angle_to_matrix(torch.stack([zero, zero, roll], 1))
              @ axis_angle_to_matrix(torch.stack([zero, yaw, zero], 1))
              @ axis_angle_to_matrix(torch.stack([pitch, zero, zero], 1)))
    return matrix_to_axis_angle(matrix)


def random_expressions(count: int, channels: int, gen: torch.Generator) -> torch.Tensor:
    """``(B, 53)``: ``channels`` random blendshapes per face uniform in [0, 1], the rest 0."""
    expression = torch.zeros(count, 53)
    if channels:
        chosen = torch.rand(count, 53, generator=gen).argsort(dim=1)[:, :channels]
        expression.scatter_(1, chosen, torch.rand(count, channels, generator=gen))
    return expression


class SyntheticFaces:
    """Draws :class:`TrainBatch` es; renders crops only when ``renderer`` is given.

    sparse: the MediaPipe mapping's sparse model; renderer: a
    :class:`~facecast.recon.learn.synthetic.SyntheticRenderer` (its model, faces, texture and
    rasterizer are used with a crop camera) or ``None`` for landmark-only batches.
    """

    def __init__(self, sparse: SparseLandmarks, renderer, config: SyntheticConfig, crop_size: int,
                 crop_scale: float, focal_factor: float, anchor: tuple[float, float, float]) -> None:
        self.sparse, self.renderer, self.config = sparse, renderer, config
        self.crop_size, self.crop_scale, self.focal_factor = crop_size, crop_scale, focal_factor
        self.anchor = torch.tensor(anchor)

    def sample(self, count: int, gen: torch.Generator, render: bool = True) -> TrainBatch:
        """``count`` new faces drawn with ``gen`` (the same generator state gives the same batch).

        render: ``False`` skips the crops (``inputs.crops`` is ``None``) even with a renderer.
        """
        c = self.config
        identity = (torch.randn(count, 100, generator=gen) * c.identity_std).clamp(-2.5, 2.5)
        expression = random_expressions(count, c.expression_channels, gen)
        rotation = random_rotations(count, c, gen)
        image_size = torch.tensor([c.image_size] * count)
        frame0 = CropFrame(torch.zeros(count, 2), torch.ones(count), self.crop_size, image_size)
        focal, principal = frame0.camera(self.focal_factor)
        depth = c.depth[0] + (c.depth[1] - c.depth[0]) * torch.rand(count, generator=gen)
        size_wh = image_size.flip(1).float()
        pixel = principal + (torch.rand(count, 2, generator=gen) - 0.5) * c.placement * size_wh
        offset = (pixel - principal) * (depth / focal)[:, None]
        anchor_cam = torch.stack([offset[:, 0], -offset[:, 1], -depth], dim=1)
        translation = anchor_cam - axis_angle_to_matrix(rotation) @ self.anchor
        with torch.no_grad():
            clean = project_points(self.sparse.evaluate(identity, expression, rotation, translation), focal, principal)
        points = clean + torch.randn(clean.shape, generator=gen) * c.pixel_noise
        frame = CropFrame.around(points, image_size, self.crop_size, self.crop_scale)
        albedo = torch.as_tensor(DEFAULT_COLOURS, dtype=torch.float32)[None].expand(count, -1, -1).clone()
        truth = FaceCoeffs(identity, expression, rotation, translation, focal, principal,
                           ambient_light(count), albedo)
        crops = None if self.renderer is None or not render else self.render(truth, frame, gen)
        return TrainBatch(truth, RegressorInputs(crops, frame.normalise(points), frame), points)

    def render(self, truth: FaceCoeffs, frame: CropFrame, gen: torch.Generator) -> torch.Tensor:
        """``(B, 3, S, S)`` crops of the true faces in [0, 1]."""
        count, ss = truth.batch_size, self.config.supersample
        direction = torch.cat([(torch.rand(count, 1, generator=gen) - 0.5) * 1.2,
                               torch.rand(count, 1, generator=gen) * 0.9 - 0.2, torch.ones(count, 1)], dim=1)
        strength = 0.3 + 0.4 * torch.rand(count, 2, generator=gen)
        light = torch.cat([directional_light(direction[b:b + 1], float(strength[b, 0]), float(strength[b, 1]))
                           for b in range(count)])
        background = 0.1 + 0.8 * torch.rand(count, 3, generator=gen)
        focal, principal = frame.crop_camera(truth.focal, truth.principal, ss)
        side = self.crop_size * ss
        r, parts = self.renderer, []
        for s in range(0, count, RENDER_CHUNK):
            part = slice(s, s + RENDER_CHUNK)
            c = truth.select(part)
            with torch.no_grad():
                vertices = r.model(c.identity, c.expression, c.rotation, c.translation).vertices
                out = r.renderer(vertices, r.faces, coeffs_camera(focal[part], principal[part], (side, side)),
                                 r.texture, light[part], background=background[part])
            image = out.image.clamp(0, 1).permute(0, 3, 1, 2)
            parts.append(torch.nn.functional.avg_pool2d(image, ss) if ss > 1 else image)
        return (torch.cat(parts) * 255 + 0.5).floor() / 255  # quantised like a photo


def flat_texture(size: int = 512, colour: tuple[int, int, int] = (200, 150, 130), noise: float = 0.0,
                 seed: int = 0) -> np.ndarray:
    """``(size, size, 3)`` uint8 skin-coloured texture (optionally noisy) for tests and smoke runs."""
    image = np.empty((size, size, 3), dtype=np.float64)
    image[:] = colour
    if noise:
        image += np.random.default_rng(seed).normal(0.0, noise, image.shape)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
