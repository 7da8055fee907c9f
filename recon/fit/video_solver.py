"""Levenberg-Marquardt for a chunk of video frames: one fixed identity, per-frame pose and
expression, tied frame to frame (the ``accurate`` tracker's solver).

It minimises the objective of :func:`facecast.recon.fit.landmark_fit.fit_landmarks` on a chunk
of consecutive frames with the identity frozen,

``sum_b [landmark term_b + expression_prior * sum(w ex_b)] + temporal_weight * sum_b |x_b - x_{b-1}|_s^2``
(``w`` 1 but on the :class:`QuickChannels`, the blinks; ``s`` the per-parameter weights)

with ``x = (rotation axis-angle, translation / 10, expression)`` and ``x_{-1}`` the frame before
the chunk (:class:`~facecast.recon.fit.landmark_fit.TemporalAnchor`), with the second-order steps
of :mod:`facecast.recon.fit.levenberg_marquardt` instead of hundreds of Adam steps. The temporal
term couples neighbouring frames, so each iteration solves one banded system over the whole chunk
(``B * 59`` unknowns); a step is kept only if it lowers the chunk's objective.
"""

from __future__ import annotations

import torch

from facecast.recon.fit.landmark_fit import (
    FitConfig,
    FitState,
    LandmarkTarget,
    QuickChannels,
    TemporalAnchor,
    temporal_loss,
    threads,
)
from facecast.recon.fit.levenberg_marquardt import (
    N_POSE,
    SolverConfig,
    _free_mask,
    _normal_equations,
    _objective,
    _posed,
    _Problem,
)
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs
from facecast.recon.model.geometry import axis_angle_to_matrix, matrix_to_axis_angle

#: the temporal term's weight per parameter (rotation rad, translation cm, expression), as
#: :func:`~facecast.recon.fit.landmark_fit.temporal_loss` weighs them (translation taken / 10)
_TEMPORAL_SCALE = (1.0, 1.0, 1.0, 0.01, 0.01, 0.01)


def solve_chunk(sparse: SparseLandmarks, target: LandmarkTarget, init: FaceCoeffs, identity: torch.Tensor,
                config: FitConfig, temporal_weight: float, anchor: TemporalAnchor | None = None,
                solver: SolverConfig = SolverConfig(iterations=10), quick: QuickChannels = QuickChannels(),
                rotation_acceleration: float = 0.0) -> FaceCoeffs:
    """Fit pose and expression of B consecutive frames of one face with ``identity (1, 100)`` fixed.

    target: ``(B, N, 2)`` renderer pixels with weights; init: ``FaceCoeffs`` of B frames (the warm
    start; its camera is kept); anchor: the frame before the chunk, or ``None``; quick: channels
    held more loosely (:class:`QuickChannels`); rotation_acceleration: the temporal term's weight on
    the rotation's second difference (:func:`~facecast.recon.fit.landmark_fit.temporal_loss`).
    Returns detached :class:`FaceCoeffs` with ``identity`` on every frame.
    """
    batch = target.points.shape[0]
    if init.batch_size != batch:
        raise ValueError(f"init has {init.batch_size} frames but target has {batch}")
    if identity.shape != (1, 100):
        raise ValueError(f"identity must have shape (1, 100), got {tuple(identity.shape)}")
    with threads(1), torch.no_grad():
        return _solve(sparse, target, init, identity, config, temporal_weight, anchor, solver, quick,
                      rotation_acceleration)


def _solve(sparse: SparseLandmarks, target: LandmarkTarget, init: FaceCoeffs, identity: torch.Tensor,
           config: FitConfig, weight_t: float, anchor: TemporalAnchor | None, solver: SolverConfig,
           quick: QuickChannels, acceleration: float) -> FaceCoeffs:
    dtype, out_dtype = torch.float64, init.expression.dtype
    batch = target.points.shape[0]
    base, basis = sparse.point_basis(dtype)
    base = base + basis[..., :100] @ identity[0].to(dtype)  # the fixed identity folded into the base
    weight = target.weight.to(dtype)
    problem = _Problem(base, basis[..., 100:].contiguous(), target.points.to(dtype),
                       weight / weight.sum(1, keepdim=True).clamp_min(1e-12), target.scale().to(dtype),
                       init.focal.to(dtype), init.principal.to(dtype), n_identity=0)
    like = torch.zeros(53, dtype=dtype)
    quick_temporal = quick.temporal_weights(like)
    scale = torch.cat([torch.tensor(_TEMPORAL_SCALE, dtype=dtype), quick_temporal])
    extra_prior = config.expression_prior * (quick.prior_weights(like) - 1.0)  # on top of the shared prior
    temporal = _Temporal(batch, anchor, scale, weight_t, acceleration, dtype)

    def state(rotation: torch.Tensor, translation: torch.Tensor, expression: torch.Tensor):
        axis_angle = matrix_to_axis_angle(rotation)
        offsets = torch.zeros((), dtype=dtype)
        if sparse.mapping.view is not None:
            offsets = sparse.mapping.view.camera_offsets(axis_angle, translation)
        points = _posed(problem, rotation, translation, expression, offsets)
        x = torch.cat([axis_angle, translation, expression], 1)
        chain = temporal_loss(FitState(axis_angle, translation, identity, expression), anchor, quick_temporal,
                              acceleration)
        loss = (_objective(problem, config, points, expression).sum() + (expression * extra_prior).sum()
                + weight_t * chain)
        if not torch.isfinite(loss) or bool((points[..., 2] >= -1e-3).any()):
            loss = torch.full((), torch.inf, dtype=dtype)
        return rotation, translation, expression, points, x, loss

    current = state(axis_angle_to_matrix(init.rotation.to(dtype)), init.translation.to(dtype).clone(),
                    init.expression.to(dtype).clamp(0, 1))
    damping = solver.damping
    for _ in range(solver.iterations):
        rotation, translation, expression, points, x, loss = current
        hessian, gradient = _normal_equations(problem, config, rotation, points, translation, expression)
        gradient = gradient + torch.cat([gradient.new_zeros(N_POSE), extra_prior]) + temporal.gradient(x)
        free = _free_mask(expression, gradient, n_identity=0)
        step = temporal.solve(hessian, gradient, free, damping)
        best = None
        for alpha in solver.step_sizes:
            delta = alpha * step
            candidate = state(axis_angle_to_matrix(delta[:, :3]) @ rotation, translation + delta[:, 3:6],
                              (expression + delta[:, N_POSE:]).clamp(0, 1))
            if best is None or candidate[-1] < best[-1]:
                best = candidate
        if best[-1] < loss:
            current = best
            damping = max(damping / 3, solver.min_damping)
        else:
            damping *= 4
    rotation, translation, expression = current[:3]
    return FaceCoeffs(identity.to(out_dtype).expand(batch, -1).clone(), expression.to(out_dtype),
                      matrix_to_axis_angle(rotation).to(out_dtype), translation.to(out_dtype),
                      init.focal, init.principal, init.lighting, init.albedo)


class _Temporal:
    """The temporal term of a chunk as a quadratic in the B frames' parameters ``x (B, P)``:
    first differences weighted by ``scale (P,)`` (the anchor in front), second differences of the
    rotation (the anchor and its ``earlier`` rotation in front), both times ``weight``."""

    def __init__(self, batch: int, anchor: TemporalAnchor | None, scale: torch.Tensor, weight: float,
                 acceleration: float, dtype: torch.dtype):
        self.anchor, self.scale, self.weight, self.acceleration = anchor, scale, weight, acceleration
        self.heads1 = 0 if anchor is None else 1
        self.heads2 = 0 if anchor is None else 1 + (anchor.earlier is not None)
        self.first = _differences(self.heads1 + batch, 1, dtype)
        self.second = _differences(self.heads2 + batch, 2, dtype)
        n = scale.shape[0]
        gram1 = self.first[:, self.heads1:].T @ self.first[:, self.heads1:]  # (B, B)
        gram2 = self.second[:, self.heads2:].T @ self.second[:, self.heads2:]
        rotation = torch.zeros(n, dtype=dtype)
        rotation[:3] = 1.0
        blocks = (2 * weight * (gram1[:, None, :, None] * torch.diag(scale)[None, :, None, :])
                  + 2 * weight * acceleration * (gram2[:, None, :, None] * torch.diag(rotation)[None, :, None, :]))
        self.hessian = blocks.reshape(batch * n, batch * n)
        # the same in blocks of two frames, which couple only neighbouring blocks (padded to even frames)
        pairs = (batch + 1) // 2
        padded = torch.zeros(2 * pairs, n, 2 * pairs, n, dtype=dtype)
        padded[:batch, :, :batch] = blocks
        padded = padded.reshape(pairs, 2 * n, pairs, 2 * n)
        index = torch.arange(pairs)
        self.diagonal = padded[index, :, index]            # (pairs, 2n, 2n)
        self.lower = padded[index[1:], :, index[:-1]]      # (pairs - 1, 2n, 2n): block i + 1 with block i
        self.batch = batch

    def solve(self, hessian: torch.Tensor, gradient: torch.Tensor, free: torch.Tensor, damping: float) -> torch.Tensor:
        """``(B, P)`` the damped Newton step of the chunk: data ``hessian (B, P, P)`` plus this term, for
        the total ``gradient (B, P)``, parameters not ``free (B, P)`` held (Levenberg-Marquardt damping
        ``damping`` x the diagonal)."""
        batch, n = gradient.shape
        pairs = self.diagonal.shape[0]
        pad = 2 * pairs - batch
        mask = torch.cat([free.to(gradient.dtype), gradient.new_zeros(pad, n)]).reshape(pairs, 2 * n)
        rhs = -torch.cat([gradient, gradient.new_zeros(pad, n)]).reshape(pairs, 2 * n) * mask
        frames = torch.cat([hessian, hessian.new_zeros(pad, n, n)])
        data = hessian.new_zeros(pairs, 2, n, 2, n)
        data[:, 0, :, 0], data[:, 1, :, 1] = frames[0::2], frames[1::2]
        diagonal = (self.diagonal + data.reshape(pairs, 2 * n, 2 * n)) * mask[:, :, None] * mask[:, None, :]
        diag = torch.diagonal(diagonal, dim1=1, dim2=2)
        diagonal = diagonal + torch.diag_embed(torch.where(mask > 0, diag * damping + 1e-9, 1.0 - diag))
        lower = self.lower * mask[1:, :, None] * mask[:-1, None, :]
        return _solve_block_tridiagonal(diagonal, lower, rhs).reshape(2 * pairs, n)[:batch]

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, P)`` gradient of the term at ``x``."""
        grad = torch.zeros_like(x)
        if self.weight == 0:
            return grad
        chain = x
        if self.anchor is not None:
            a = self.anchor
            chain = torch.cat([torch.cat([a.rotation, a.translation, a.expression], 1).to(x.dtype), x])
        grad += 2 * self.weight * self.first[:, self.heads1:].T @ (self.first @ chain) * self.scale
        if self.acceleration:
            rotation = chain[:, :3]
            if self.heads2 == 2:
                rotation = torch.cat([self.anchor.earlier.to(x.dtype), rotation])
            second = self.second
            grad[:, :3] += 2 * self.weight * self.acceleration * second[:, self.heads2:].T @ (second @ rotation)
        return grad


def _differences(frames: int, order: int, dtype: torch.dtype) -> torch.Tensor:
    """``(frames - order, frames)`` the finite-difference operator of ``order`` 1 or 2 (empty if too short)."""
    stencil = torch.tensor([-1.0, 1.0] if order == 1 else [1.0, -2.0, 1.0], dtype=dtype)
    rows = max(frames - order, 0)
    out = torch.zeros(rows, frames, dtype=dtype)
    for k, c in enumerate(stencil):
        out[torch.arange(rows), torch.arange(rows) + k] = c
    return out


def _solve_block_tridiagonal(diagonal: torch.Tensor, lower: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve the symmetric positive definite system of ``diagonal (M, K, K)`` blocks with ``lower
    (M - 1, K, K)`` between block ``i + 1`` and block ``i`` (and its transpose above), ``rhs (M, K)``:
    block Thomas with Cholesky factors."""
    factors, right = [torch.linalg.cholesky(diagonal[0])], [rhs[0]]
    for i in range(1, diagonal.shape[0]):
        across = torch.cholesky_solve(lower[i - 1].T, factors[-1])  # C_{i-1}^-1 L_i^T
        factors.append(torch.linalg.cholesky(diagonal[i] - lower[i - 1] @ across))
        right.append(rhs[i] - across.T @ right[-1])
    out = [torch.cholesky_solve(right[-1][:, None], factors[-1])[:, 0]]
    for i in range(diagonal.shape[0] - 2, -1, -1):
        out.append(torch.cholesky_solve((right[i] - lower[i].T @ out[-1])[:, None], factors[i])[:, 0])
    return torch.stack(out[::-1])
