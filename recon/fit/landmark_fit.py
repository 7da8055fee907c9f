"""Analysis-by-synthesis fitting of :class:`FaceCoeffs` to detected landmarks (and pixels).

Stages per batch of images (all faces optimised together, one Adam state):

1. pose initialisation from the 2D landmarks and the neutral model (``cv2.solvePnP``);
2. rigid-only landmark fit;
3. joint fit of pose, identity (100) and expression (53, projected to [0, 1]) with
   a robust landmark loss and priors;
4. optional photometric refinement through the renderer (see :mod:`facecast.recon.fit.photometric`).

Video mode (:mod:`facecast.recon.fit.tracking`) reuses :func:`fit_landmarks` with a
shared, frozen identity, warm starts and a temporal term.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs, project_points
from facecast.recon.model.geometry import matrix_to_axis_angle
from facecast.render.shading import ambient_light

FOCAL_FACTOR = 1.2  # default focal length = FOCAL_FACTOR * max(H, W) pixels (about 45 degrees)


@dataclass
class LandmarkTarget:
    """Detected 2D landmarks for B images.

    points ``(B, N, 2)`` pixels (see :mod:`facecast.recon.model.coeffs` for the convention);
    weight ``(B, N)`` >= 0 (0 = ignore the point); image_size ``(H, W)`` per image as
    ``(B, 2)`` integers.
    """

    points: torch.Tensor
    weight: torch.Tensor
    image_size: torch.Tensor
    _scale: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        b = self.points.shape[0]
        if self.points.ndim != 3 or self.points.shape[-1] != 2:
            raise ValueError(f"points must have shape (B, N, 2), got {tuple(self.points.shape)}")
        if tuple(self.weight.shape) != tuple(self.points.shape[:2]):
            raise ValueError(f"weight must have shape {tuple(self.points.shape[:2])}, got {tuple(self.weight.shape)}")
        if tuple(self.image_size.shape) != (b, 2):
            raise ValueError(f"image_size must have shape ({b}, 2), got {tuple(self.image_size.shape)}")

    def scale(self) -> torch.Tensor:
        """``(B,)`` face size in pixels: the diagonal of the weighted points' bounding box (computed
        once: the target does not change during a fit)."""
        if self._scale is None:
            big = torch.finfo(self.points.dtype).max
            valid = (self.weight > 0)[..., None]
            low = torch.where(valid, self.points, big).amin(1)
            high = torch.where(valid, self.points, -big).amax(1)
            self._scale = (high - low).norm(dim=-1).clamp_min(1.0)
        return self._scale


@dataclass
class FitConfig:
    """Weights and schedule of the landmark fit (defaults tuned on synthetic faces)."""

    rigid_steps: int = 60
    steps: int = 250
    lr: float = 0.03
    identity_prior: float = 3e-5
    expression_prior: float = 2e-5
    huber_delta: float = 0.01  # in units of the face size
    focal_factor: float = FOCAL_FACTOR
    albedo_regions: int = 1
    warm_steps: int = 60  # steps when warm-started (video frames after the first)
    shared_identity: bool = False  # one identity for the whole batch (frames of one person)
    temporal_weight: float = 0.0  # video: weight of the frame-to-frame term


def default_camera(image_size: torch.Tensor, focal_factor: float = FOCAL_FACTOR,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Focal ``(B,)`` and principal point ``(B, 2)`` for images of size ``(B, 2)`` (H, W)."""
    size = image_size.to(dtype)
    focal = focal_factor * size.amax(dim=1)
    principal = torch.stack([size[:, 1] / 2, size[:, 0] / 2], dim=1)
    return focal, principal


def initial_pose(points3d: np.ndarray, target: LandmarkTarget, focal: torch.Tensor,
                 principal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation ``(B, 3)`` and translation ``(B, 3)`` cm from PnP on the neutral landmark points.

    points3d ``(N, 3)`` model points (cm) matching ``target.points``.
    """
    import cv2

    rotations, translations = [], []
    d = np.diag([1.0, -1.0, -1.0])  # OpenCV camera frame -> ours (y up, looking down -z)
    for b in range(target.points.shape[0]):
        keep = (target.weight[b] > 0).cpu().numpy()
        obj = points3d[keep].astype(np.float64)
        img = target.points[b].detach().cpu().numpy()[keep].astype(np.float64)
        f, (cx, cy) = float(focal[b]), principal[b].tolist()
        camera = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float64)
        ok, rvec, tvec = cv2.solvePnP(obj, img, camera, None, flags=cv2.SOLVEPNP_EPNP)
        if ok:
            ok, rvec, tvec = cv2.solvePnP(obj, img, camera, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
        if not ok or tvec[2, 0] <= 0:
            rvec, tvec = np.zeros((3, 1)), np.array([[0.0], [0.0], [f * 15.0 / max(np.ptp(img[:, 0]), 1.0)]])
        matrix = d @ cv2.Rodrigues(rvec)[0]
        rotations.append(matrix)
        translations.append(d @ tvec[:, 0])
    rot = matrix_to_axis_angle(torch.tensor(np.stack(rotations)))
    return rot.to(focal.dtype), torch.tensor(np.stack(translations), dtype=focal.dtype)


def huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Elementwise Huber of a non-negative distance ``x``."""
    return torch.where(x < delta, 0.5 * x * x / delta, x - 0.5 * delta)


@dataclass
class FitState:
    """Free parameters during a fit (leaf tensors). identity is ``(B, 100)`` or shared ``(1, 100)``."""

    rotation: torch.Tensor
    translation: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor

    def clamp_(self) -> None:
        """Project expressions onto [0, 1] (after an optimiser step)."""
        with torch.no_grad():
            self.expression.clamp_(0.0, 1.0)


@dataclass
class TemporalAnchor:
    """The frame before a video chunk: its pose and expression ``(1, 3)``, ``(1, 3)``, ``(1, 53)``;
    ``earlier``: the rotation ``(1, 3)`` of the frame before that one, or None (for the
    acceleration term of :func:`temporal_loss`)."""

    rotation: torch.Tensor
    translation: torch.Tensor
    expression: torch.Tensor
    earlier: torch.Tensor | None = None


def landmark_loss(sparse: SparseLandmarks, state: FitState, target: LandmarkTarget,
                  focal: torch.Tensor, principal: torch.Tensor, delta: float) -> torch.Tensor:
    """``(B,)`` robust mean landmark distance in units of the face size."""
    identity = state.identity.expand(state.expression.shape[0], -1)
    points = sparse.evaluate(identity, state.expression, state.rotation, state.translation)
    pixels = project_points(points, focal, principal)
    dist = (pixels - target.points).norm(dim=-1) / target.scale()[:, None]
    weight = target.weight
    return (huber(dist, delta) * weight).sum(1) / weight.sum(1).clamp_min(1e-6)


@dataclass(frozen=True)
class QuickChannels:
    """Expression channels that move in a few frames (blinks): their expression prior is ``prior``
    times, and their frame-to-frame term ``temporal`` times, the other channels'. ``indices``: into
    the model's 53 expression channels."""

    indices: tuple[int, ...] = ()
    prior: float = 1.0
    temporal: float = 1.0

    def prior_weights(self, like: torch.Tensor) -> torch.Tensor:
        """``(53,)`` per-channel multipliers of the expression prior (dtype and device of ``like``)."""
        return self._weights(self.prior, like)

    def temporal_weights(self, like: torch.Tensor) -> torch.Tensor:
        """``(53,)`` per-channel multipliers of the expression's frame-to-frame term."""
        return self._weights(self.temporal, like)

    def _weights(self, value: float, like: torch.Tensor) -> torch.Tensor:
        weights = torch.ones(like.shape[-1], dtype=like.dtype, device=like.device)
        weights[list(self.indices)] = value
        return weights


def temporal_loss(state: FitState, anchor: TemporalAnchor | None,
                  expression_weight: torch.Tensor | None = None, rotation_acceleration: float = 0.0) -> torch.Tensor:
    """Squared frame-to-frame change of pose (rad, dm) and expression, summed over the chunk;
    ``expression_weight`` ``(53,)``: per-channel weights of the expression's change (default 1);
    plus ``rotation_acceleration`` x the squared second difference of the rotation (it damps a pose
    that jumps and comes back, not a steady turn)."""
    parts = [state.rotation, state.translation / 10.0, state.expression]
    if anchor is not None:
        heads = [anchor.rotation, anchor.translation / 10.0, anchor.expression]
        parts = [torch.cat([h.to(p.dtype), p]) for h, p in zip(heads, parts)]
    steps = [(p[1:] - p[:-1]) ** 2 for p in parts]
    if expression_weight is not None:
        steps[2] = steps[2] * expression_weight
    if rotation_acceleration:
        rotation = parts[0]
        if anchor is not None and anchor.earlier is not None:
            rotation = torch.cat([anchor.earlier.to(rotation.dtype), rotation])
        steps.append(rotation_acceleration * (rotation[2:] - 2 * rotation[1:-1] + rotation[:-2]) ** 2)
    return sum(step.sum() for step in steps)


@contextmanager
def threads(count: int) -> Iterator[None]:
    """Run torch with ``count`` intra-op threads inside the block (restored after).

    Landmark fits work on ~1,400 vertices: thread start-up costs more than it saves,
    and on a busy machine several threads per tiny op are 5-10x slower than one.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_adam(params: list[torch.Tensor], closure, steps: int, lr: float, after_step=None) -> None:
    """``steps`` Adam steps on ``closure()`` with a cosine learning-rate decay to 5%.

    The update of ``torch.optim.Adam`` (betas 0.9, 0.999, eps 1e-8) with the schedule of
    ``CosineAnnealingLR``, written out: the first ``torch.optim`` optimiser of a process imports
    torch's compiler stack (about 3 s on a 2-core CPU), more than a whole photo fit takes.
    """
    beta1, beta2, eps, low = 0.9, 0.999, 1e-8, lr * 0.05
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    total = max(steps, 1)
    for step in range(1, steps + 1):
        for p in params:
            p.grad = None
        closure().backward()
        rate = low + (lr - low) * (1 + math.cos(math.pi * (step - 1) / total)) / 2
        with torch.no_grad():
            for p, (m, v) in zip(params, moments):
                if p.grad is None:
                    continue
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (v / (1 - beta2 ** step)).sqrt_().add_(eps)
                p.addcdiv_(m, denom, value=-rate / (1 - beta1 ** step))
        if after_step is not None:
            after_step()


def _initial_state(sparse: SparseLandmarks, target: LandmarkTarget, config: FitConfig,
                   init: FaceCoeffs | None, identity: torch.Tensor | None):
    dtype = sparse.model.neutral.dtype
    batch = target.points.shape[0]
    if init is not None:
        rotation, translation, id0, ex0 = init.rotation, init.translation, init.identity, init.expression
        focal, principal = init.focal, init.principal
    else:
        focal, principal = default_camera(target.image_size, config.focal_factor, dtype)
        neutral = sparse.points(sparse.model.neutral[None])[0]
        rotation, translation = initial_pose(neutral.detach().cpu().numpy(), target, focal, principal)
        id0, ex0 = torch.zeros(batch, 100, dtype=dtype), torch.zeros(batch, 53, dtype=dtype)
    if identity is not None:
        id0 = identity
    elif config.shared_identity:
        id0 = id0.mean(0, keepdim=True)
    state = FitState(*(t.detach().clone().to(dtype).requires_grad_(True)
                       for t in (rotation, translation, id0, ex0)))
    return state, focal.to(dtype), principal.to(dtype)


def fit_landmarks(sparse: SparseLandmarks, target: LandmarkTarget,
                  config: FitConfig = FitConfig(), init: FaceCoeffs | None = None,
                  identity: torch.Tensor | None = None, anchor: TemporalAnchor | None = None,
                  quick: QuickChannels = QuickChannels()) -> FaceCoeffs:
    """Fit pose, identity and expression of B faces (or B frames of one face) to 2D landmarks.

    sparse: the landmark mapping with its sparse model (:meth:`SparseLandmarks.build`).
    init: optional warm start (pose, identity, expression, camera taken from it); skips PnP
    and the rigid stage. identity: optional fixed ``(1, 100)`` or ``(B, 100)`` identity
    (not optimised). anchor: the frame before this batch, for the temporal term
    (``config.temporal_weight``; frames of the batch are consecutive). quick: channels held more
    loosely by the expression prior and the temporal term (:class:`QuickChannels`).
    Returns detached :class:`FaceCoeffs` (ambient light, grey albedo).
    """
    with threads(1):
        return _fit(sparse, target, config, init, identity, anchor, quick)


def _fit(sparse: SparseLandmarks, target: LandmarkTarget, config: FitConfig, init: FaceCoeffs | None,
         identity: torch.Tensor | None, anchor: TemporalAnchor | None, quick: QuickChannels) -> FaceCoeffs:
    state, focal, principal = _initial_state(sparse, target, config, init, identity)
    delta = config.huber_delta
    prior_weight, temporal_weight = quick.prior_weights(state.expression), quick.temporal_weights(state.expression)

    def rigid_loss() -> torch.Tensor:
        return landmark_loss(sparse, state, target, focal, principal, delta).sum()

    if init is None and config.rigid_steps:
        run_adam([state.rotation, state.translation], rigid_loss, config.rigid_steps, config.lr)

    def full_loss() -> torch.Tensor:
        data = landmark_loss(sparse, state, target, focal, principal, delta).sum()
        prior = (config.identity_prior * (state.identity ** 2).sum()
                 + config.expression_prior * (state.expression.abs() * prior_weight).sum())
        if config.temporal_weight > 0:
            prior = prior + config.temporal_weight * temporal_loss(state, anchor, temporal_weight)
        return data + prior

    params = [state.rotation, state.translation, state.expression]
    if identity is None:
        params.append(state.identity)
    steps = config.steps if init is None else config.warm_steps
    run_adam(params, full_loss, steps, config.lr, after_step=state.clamp_)
    return coeffs_from_state(state, focal, principal, config.albedo_regions)


def coeffs_from_state(state: FitState, focal: torch.Tensor, principal: torch.Tensor,
                      albedo_regions: int) -> FaceCoeffs:
    """Detached :class:`FaceCoeffs` with ambient-only light and grey albedo."""
    batch, dtype = state.expression.shape[0], state.expression.dtype
    lighting = ambient_light(batch, 1.0, dtype=dtype)
    albedo = torch.full((batch, albedo_regions, 3), 0.6, dtype=dtype)
    identity = state.identity.detach().expand(batch, -1).clone()
    return FaceCoeffs(identity, state.expression.detach().clone(), state.rotation.detach().clone(),
                      state.translation.detach().clone(), focal.detach(), principal.detach(), lighting, albedo)
