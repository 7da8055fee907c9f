"""Photometric refinement through the differentiable renderer (analysis by synthesis).

After the landmark fit, the face is cropped to a square of ``size`` pixels and:

1. **light + albedo**: with the geometry fixed, SH lighting ``(B, 9, 3)`` and the
   region colours of :class:`~facecast.recon.model.albedo.AlbedoModel` are fitted to the
   skin pixels (rasterized once; each step only re-shades, so this is cheap);
2. **joint**: ``joint_steps`` steps of pose, identity, expression, light and
   albedo against photometric + landmark losses and priors, re-rendering each step.

The photometric loss is a robust L1 over pixels covered by face-region triangles
(forehead to chin; eye and mouth holes excluded), so hair, beards and occluders
cost a bounded amount.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecast.recon.fit.landmark_fit import FitConfig, FitState, LandmarkTarget, landmark_loss, run_adam
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.albedo import FITTED_REGIONS, AlbedoModel
from facecast.recon.model.coeffs import FaceCoeffs, coeffs_camera
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import REGION_STARTS
from facecast.render.interpolate import foreground, vertex_attributes_at
from facecast.render.renderer import Renderer, RendererConfig
from facecast.render.shading import ambient_light, irradiance_grouped, vertex_normals

RENDER_REGIONS = ("face", "head_neck", "mouth_socket", "eye_sockets")


@dataclass
class PhotometricConfig:
    """Crop size, schedule and weights of the photometric stage."""

    size: int = 192
    crop_scale: float = 1.6  # crop side = crop_scale * landmark box diagonal / sqrt(2)
    light_steps: int = 80
    light_pixels: int = 4096  # the light stage fits 27 + 3A numbers: every k-th skin pixel, ~this many per face
    joint_steps: int = 12
    lr: float = 0.02
    photo_weight: float = 1.0
    landmark_weight: float = 10.0


@dataclass
class FaceCrop:
    """Square crop: image pixel ``p`` maps to crop pixel ``(p - origin) * scale``."""

    origin: torch.Tensor  # (B, 2) pixels (renderer convention)
    scale: torch.Tensor   # (B,)
    size: int


def face_crop(points: torch.Tensor, size: int, crop_scale: float) -> FaceCrop:
    """Crops around landmark points ``(B, N, 2)`` (renderer pixels)."""
    low, high = points.amin(1), points.amax(1)
    centre = (low + high) / 2
    side = crop_scale * (high - low).norm(dim=-1) / 2 ** 0.5
    return FaceCrop(centre - side[:, None] / 2, size / side, size)


def crop_images(images: list[np.ndarray], crop: FaceCrop) -> torch.Tensor:
    """RGB uint8 images -> ``(B, S, S, 3)`` float crops in [0, 1] (bilinear, area-filtered)."""
    import cv2

    out = []
    for b, image in enumerate(images):
        s, (ox, oy) = float(crop.scale[b]), crop.origin[b].tolist()
        # crop pixel centre (j + .5) <- image continuous coordinate; cv2 maps integer centres
        matrix = np.array([[s, 0, -ox * s + 0.5 * s - 0.5], [0, s, -oy * s + 0.5 * s - 0.5]], dtype=np.float64)
        flags = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        warped = cv2.warpAffine(image, matrix, (crop.size, crop.size), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        out.append(torch.from_numpy(warped).float() / 255.0)
    return torch.stack(out)


class PhotometricFitter:
    """Refines landmark-fitted :class:`FaceCoeffs` against the pixels of their images."""

    def __init__(self, model: MorphableModel, sparse: SparseLandmarks,
                 config: PhotometricConfig = PhotometricConfig(), renderer: Renderer | None = None):
        self.model, self.sparse, self.config = model, sparse, config
        self.albedo = AlbedoModel.from_data(model.data, model.neutral.dtype)
        self.renderer = renderer or Renderer(RendererConfig(backend="torch"))
        self.faces = model.triangles(RENDER_REGIONS)
        self.loss_faces = (self.faces < REGION_STARTS["head_neck"]).all(1)  # all corners on the face

    def _render_setup(self, coeffs: FaceCoeffs, crop: FaceCrop):
        focal = coeffs.focal * crop.scale
        principal = (coeffs.principal - crop.origin) * crop.scale[:, None]
        return focal, principal

    def _fit_light(self, vertices: torch.Tensor, camera, photo: torch.Tensor, colours0: torch.Tensor):
        """Stage 1: light ``(B, 9, 3)`` and colours ``(B, A, 3)`` with geometry fixed."""
        with torch.no_grad():
            out = self.renderer(vertices, self.faces, camera, self.albedo.vertex_albedo(colours0))
            fg = foreground(out.fragments)
            keep = self.loss_faces[fg.face].nonzero().squeeze(1)
            stride = max(1, len(keep) // max(1, self.config.light_pixels * vertices.shape[0]))
            fg = type(fg)(*(field[keep[::stride]] for field in fg))  # still in pixel order: grouped by image
            attributes = torch.cat([self.albedo.weights[None].expand(vertices.shape[0], -1, -1),
                                    vertex_normals(vertices, self.faces)], dim=-1)
            values = vertex_attributes_at(attributes, self.faces, fg)
            weights, normals = values[:, :-3], torch.nn.functional.normalize(values[:, -3:], dim=-1)
            target = photo.reshape(-1, 3)[fg.pixel]
            counts = torch.bincount(fg.image, minlength=vertices.shape[0]).tolist()
        light = ambient_light(vertices.shape[0], 1.0, dtype=vertices.dtype).requires_grad_(True)
        colours = colours0.clone().requires_grad_(True)
        fitted = torch.zeros(colours.shape[1], dtype=torch.bool)
        fitted[list(FITTED_REGIONS)] = True
        image_of = fg.image

        def loss() -> torch.Tensor:
            albedo = (weights[:, None, :] @ torch.where(fitted[None, :, None], colours, colours0)[image_of]).squeeze(1)
            shade = irradiance_grouped(normals, light, counts)
            return (albedo * shade - target).abs().mean()

        run_adam([light, colours], loss, self.config.light_steps, 0.05)
        return light.detach(), colours.detach().clamp(0.0, 1.0)

    def refine(self, coeffs: FaceCoeffs, images: list[np.ndarray], target: LandmarkTarget,
               fit: FitConfig = FitConfig()) -> FaceCoeffs:
        """Photometric refinement of B faces (one per image, ``images`` RGB uint8)."""
        config = self.config
        crop = face_crop(target.points, config.size, config.crop_scale)
        photo = crop_images(images, crop).to(coeffs.identity.dtype)
        focal, principal = self._render_setup(coeffs, crop)
        camera = coeffs_camera(focal, principal, (config.size, config.size))
        with torch.no_grad():
            vertices = self.model(coeffs.identity, coeffs.expression, coeffs.rotation, coeffs.translation).vertices
        colours0 = self.albedo.default_colours(coeffs.batch_size).to(vertices.dtype)
        light, colours = self._fit_light(vertices, camera, photo, colours0)
        if config.joint_steps == 0:
            return FaceCoeffs(coeffs.identity, coeffs.expression, coeffs.rotation, coeffs.translation,
                              coeffs.focal, coeffs.principal, light, colours)
        return self._joint(coeffs, target, fit, camera, photo, light, colours)

    def _joint(self, coeffs, target, fit, camera, photo, light, colours) -> FaceCoeffs:
        state = FitState(*(t.clone().requires_grad_(True) for t in
                           (coeffs.rotation, coeffs.translation, coeffs.identity, coeffs.expression)))
        light, colours = light.clone().requires_grad_(True), colours.clone().requires_grad_(True)
        mask = self.loss_faces

        def loss() -> torch.Tensor:
            vertices = self.model(state.identity, state.expression, state.rotation, state.translation).vertices
            out = self.renderer(vertices, self.faces, camera, self.albedo.vertex_albedo(colours), light)
            covered = (out.fragments.pix_to_face >= 0) & mask[out.fragments.pix_to_face.clamp_min(0)]
            diff = (out.image - photo).abs().sum(-1)
            photo_loss = (diff * covered).sum() / covered.sum().clamp_min(1)
            lmk = landmark_loss(self.sparse, state, target, coeffs.focal, coeffs.principal, fit.huber_delta).sum()
            prior = (fit.identity_prior * (state.identity ** 2).sum()
                     + fit.expression_prior * state.expression.abs().sum())
            return self.config.photo_weight * photo_loss + self.config.landmark_weight * lmk + prior

        run_adam([state.rotation, state.translation, state.identity, state.expression, light, colours],
                  loss, self.config.joint_steps, self.config.lr * 0.25, after_step=state.clamp_)
        return FaceCoeffs(state.identity.detach(), state.expression.detach(), state.rotation.detach(),
                          state.translation.detach(), coeffs.focal, coeffs.principal, light.detach(),
                          colours.detach().clamp(0.0, 1.0))
