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
                solver: SolverConfig = SolverConfig(iterations=10), quick: QuickChannels = QuickChannels()
                ) -> FaceCoeffs:
    """Fit pose and expression of B consecutive frames of one face with ``identity (1, 100)`` fixed.

    target: ``(B, N, 2)`` renderer pixels with weights; init: ``FaceCoeffs`` of B frames (the warm
    start; its camera is kept); anchor: the frame before the chunk, or ``None``; quick: channels
    held more loosely (:class:`QuickChannels`).
    Returns detached :class:`FaceCoeffs` with ``identity`` on every frame.
    """
    batch = target.points.shape[0]
    if init.batch_size != batch:
        raise ValueError(f"init has {init.batch_size} frames but target has {batch}")
    if identity.shape != (1, 100):
        raise ValueError(f"identity must have shape (1, 100), got {tuple(identity.shape)}")
    with threads(1), torch.no_grad():
        return _solve(sparse, target, init, identity, config, temporal_weight, anchor, solver, quick)


def _solve(sparse: SparseLandmarks, target: LandmarkTarget, init: FaceCoeffs, identity: torch.Tensor,
           config: FitConfig, weight_t: float, anchor: TemporalAnchor | None, solver: SolverConfig,
           quick: QuickChannels) -> FaceCoeffs:
    dtype, out_dtype = torch.float64, init.expression.dtype
    batch = target.points.shape[0]
    base, basis = sparse.point_basis(dtype)
    base = base + basis[..., :100] @ identity[0].to(dtype)  # the fixed identity folded into the base
    weight = target.weight.to(dtype)
    problem = _Problem(base, basis[..., 100:].contiguous(), target.points.to(dtype),
                       weight / weight.sum(1, keepdim=True).clamp_min(1e-12), target.scale().to(dtype),
                       init.focal.to(dtype), init.principal.to(dtype), n_identity=0)
    n_params = N_POSE + 53
    like = torch.zeros(53, dtype=dtype)
    quick_temporal = quick.temporal_weights(like)
    scale = torch.cat([torch.tensor(_TEMPORAL_SCALE, dtype=dtype), quick_temporal])
    extra_prior = config.expression_prior * (quick.prior_weights(like) - 1.0)  # on top of the shared prior
    head = None
    if anchor is not None:
        head = torch.cat([anchor.rotation, anchor.translation, anchor.expression], 1).to(dtype)

    def state(rotation: torch.Tensor, translation: torch.Tensor, expression: torch.Tensor):
        axis_angle = matrix_to_axis_angle(rotation)
        offsets = torch.zeros((), dtype=dtype)
        if sparse.mapping.view is not None:
            offsets = sparse.mapping.view.camera_offsets(axis_angle, translation)
        points = _posed(problem, rotation, translation, expression, offsets)
        x = torch.cat([axis_angle, translation, expression], 1)
        chain = temporal_loss(FitState(axis_angle, translation, identity, expression), anchor, quick_temporal)
        loss = (_objective(problem, config, points, expression).sum() + (expression * extra_prior).sum()
                + weight_t * chain)
        if not torch.isfinite(loss) or bool((points[..., 2] >= -1e-3).any()):
            loss = torch.full((), torch.inf, dtype=dtype)
        return rotation, translation, expression, points, x, loss

    current = state(axis_angle_to_matrix(init.rotation.to(dtype)), init.translation.to(dtype).clone(),
                    init.expression.to(dtype).clamp(0, 1))
    damping = solver.damping
    # the temporal term's Hessian: 2 w scale on each frame per neighbour, -2 w scale between neighbours
    links = torch.ones(batch, dtype=dtype)
    if head is None:
        links[0] = 0.0
    degree = links + torch.cat([links[1:], links.new_zeros(1)])
    for _ in range(solver.iterations):
        rotation, translation, expression, points, x, loss = current
        hessian, gradient = _normal_equations(problem, config, rotation, points, translation, expression)
        gradient = gradient + torch.cat([gradient.new_zeros(N_POSE), extra_prior])
        chain = x if head is None else torch.cat([head, x])
        diff = (chain[1:] - chain[:-1]) * scale  # (B, P) for links into frames 0..B-1 (or 1..B-1)
        if head is None:
            diff = torch.cat([diff.new_zeros(1, n_params), diff])
        grad_t = 2 * weight_t * (diff - torch.cat([diff[1:], diff.new_zeros(1, n_params)]))
        free = _free_mask(expression, gradient + grad_t, n_identity=0)
        mask = free.to(dtype)
        blocks = hessian + torch.diag_embed(scale * 2 * weight_t * degree[:, None])
        blocks = blocks * mask[:, :, None] * mask[:, None, :]
        diag = torch.diagonal(blocks, dim1=1, dim2=2)
        blocks = blocks + torch.diag_embed(torch.where(free, diag * damping + 1e-9, 1.0 - diag))
        coupling = -2 * weight_t * scale * mask * torch.cat([mask[:1] * 0, mask[:-1]])  # frame b with b - 1
        step = _solve_banded(blocks, coupling, -(gradient + grad_t) * mask)
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


def _solve_banded(blocks: torch.Tensor, coupling: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve the symmetric block-tridiagonal system ``blocks (B, P, P)`` on the diagonal and the diagonal
    matrices ``coupling[b] (P,)`` between frames ``b`` and ``b - 1``, for ``rhs (B, P)`` (block Thomas)."""
    batch = blocks.shape[0]
    reduced, right = [blocks[0]], [rhs[0]]
    for b in range(1, batch):
        lower = torch.linalg.solve(reduced[-1], torch.diag(coupling[b])).T  # C_b D'_{b-1}^-1
        reduced.append(blocks[b] - lower * coupling[b][None, :])
        right.append(rhs[b] - lower @ right[-1])
    out = [torch.linalg.solve(reduced[-1], right[-1])]
    for b in range(batch - 2, -1, -1):
        out.append(torch.linalg.solve(reduced[b], right[b] - coupling[b + 1] * out[-1]))
    return torch.stack(out[::-1])
