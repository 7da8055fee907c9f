"""Levenberg-Marquardt refinement of a warm-started landmark fit (the ``refine`` mode's solver).

It minimises the same objective as :func:`facecast.recon.fit.landmark_fit.fit_landmarks`'s joint
stage, per face:

``sum_k w_k huber(|proj(X_k) - p_k| / s, delta) / sum_k w_k
+ identity_prior * |id|^2 + expression_prior * sum(ex)``  with ``ex`` in [0, 1],

but with second-order steps instead of Adam: the landmark points are linear in identity
and expression (``X = P0 + P_id id + P_ex ex``, posed by ``R X + t``), so the Jacobian of
the residuals is cheap in closed form. Huber is handled by iteratively reweighted least
squares, the bounds of ``ex`` by an active set (channels at a bound whose gradient points
outwards are frozen for that step, the others are projected back after it), rotation by
a left-multiplied axis-angle increment. Each face keeps its own damping; a step that does
not lower the objective is refused and the damping raised. A few iterations from the
regressor's answer reach the optimum that hundreds of Adam steps approach.

View-dependent offsets of a mapping (:class:`~facecast.recon.landmarks.correspondence.ViewOffsets`)
are added at the current pose and treated as constant within a step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from facecast.recon.fit.landmark_fit import FitConfig, LandmarkTarget, huber, threads
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import FaceCoeffs
from facecast.recon.model.geometry import axis_angle_to_matrix, matrix_to_axis_angle

#: share of the Huber's radial curvature kept outside delta (1 = the exact Hessian of the
#: distance, 0 = plain reweighting): 0.5 converged in the fewest iterations on LFPW fits
HUBER_RADIAL = 0.5
N_POSE = 6  # rotation increment (3) + translation (3)


@dataclass
class SolverConfig:
    """Iterations and damping of :func:`refine_landmarks`."""

    iterations: int = 8
    damping: float = 0.1  # initial Levenberg-Marquardt lambda (relative to diag(H))
    min_damping: float = 1e-7
    step_sizes: tuple[float, ...] = (1.0, 0.5, 0.25)


@dataclass
class _Problem:
    """Constant data of one solve, float64."""

    base: torch.Tensor       # (N, 3) landmark points of the neutral, model frame
    basis: torch.Tensor      # (N, 3, K) points per identity (n_identity) + expression (53) weight
    target: torch.Tensor     # (B, N, 2) pixels
    weight: torch.Tensor     # (B, N) normalised point weights (sum 1 per face)
    scale: torch.Tensor      # (B,) face size in pixels
    focal: torch.Tensor      # (B,)
    principal: torch.Tensor  # (B, 2)
    n_identity: int = 100    # identity columns of basis (0: the identity is fixed, folded into base)


def _posed(problem: _Problem, rotation: torch.Tensor, translation: torch.Tensor, shape: torch.Tensor,
           offsets: torch.Tensor) -> torch.Tensor:
    """Camera-frame points ``(B, N, 3)`` for rotation matrices ``(B, 3, 3)``, shape ``(B, K)``."""
    n, k = problem.basis.shape[0], problem.basis.shape[2]
    local = problem.base + (shape @ problem.basis.reshape(n * 3, k).T).reshape(-1, n, 3)
    return local @ rotation.transpose(1, 2) + translation[:, None] + offsets


def _project(problem: _Problem, points: torch.Tensor) -> torch.Tensor:
    """Pixels ``(B, N, 2)``: ``u = cx - f X / Z``, ``v = cy + f Y / Z`` (camera looks down -z), the
    projection of :func:`facecast.recon.model.coeffs.project_points` written out for its Jacobian."""
    f = problem.focal[:, None]
    z = points[..., 2]
    u = problem.principal[:, None, 0] - f * points[..., 0] / z
    v = problem.principal[:, None, 1] + f * points[..., 1] / z
    return torch.stack([u, v], dim=-1)


def _objective(problem: _Problem, config: FitConfig, points: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the fit objective (robust landmark term + priors)."""
    dist = (_project(problem, points) - problem.target).norm(dim=-1) / problem.scale[:, None]
    data = (huber(dist, config.huber_delta) * problem.weight).sum(1)
    identity, expression = shape[:, :problem.n_identity], shape[:, problem.n_identity:]
    return data + config.identity_prior * (identity ** 2).sum(1) + config.expression_prior * expression.abs().sum(1)


def _normal_equations(problem: _Problem, config: FitConfig, rotation: torch.Tensor, points: torch.Tensor,
                      translation: torch.Tensor, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IRLS Gauss-Newton ``H (B, P, P)`` and gradient ``g (B, P)``, P = 6 + 153."""
    f, z = problem.focal[:, None], points[..., 2]
    x, y = points[..., 0], points[..., 1]
    zero = torch.zeros_like(z)
    # d(u, v) / d(X, Y, Z) for u = cx - f X / Z, v = cy + f Y / Z, in face-size units
    du = torch.stack([-f / z, zero, f * x / z ** 2], -1)
    dv = torch.stack([zero, f / z, -f * y / z ** 2], -1)
    dproj = torch.stack([du, dv], -2) / problem.scale[:, None, None, None]            # (B, N, 2, 3)
    rel = points - translation[:, None]                                                 # R X (+ offsets)
    rx, ry, rz = rel.unbind(-1)
    # d(R X) / d(omega) for R <- exp(omega) R is -[R X]_x
    skew = torch.stack([zero, rz, -ry, -rz, zero, rx, ry, -rx, zero], -1).reshape(*rel.shape, 3)
    # shape columns d(u, v)/d(shape) = (dproj R) basis: a (2, 3) @ (3, K) product per point, batched over the points
    turned = (dproj @ rotation[:, None]).permute(1, 0, 2, 3).reshape(points.shape[1], -1, 3)  # (N, B * 2, 3)
    shape_jac = (turned @ problem.basis).reshape(points.shape[1], points.shape[0], 2, -1).permute(1, 0, 2, 3)
    jac = torch.cat([dproj @ skew, dproj, shape_jac], dim=-1)                                 # (B, N, 2, P)
    residual = (_project(problem, points) - problem.target) / problem.scale[:, None, None]
    dist = residual.norm(dim=-1)
    delta = config.huber_delta
    irls = problem.weight * torch.where(dist < delta, torch.full_like(dist, 1.0 / delta),
                                        1.0 / dist.clamp_min(1e-12))                   # (B, N)
    gradient = ((residual * irls[..., None])[..., None, :] @ jac).sum(1)[:, 0]
    # Hessian of the Huber of a 2-D distance: I / delta inside, (I - r r^T / d^2) / d outside
    unit = residual / dist[..., None].clamp_min(1e-12)
    outside = (dist >= delta).to(points.dtype)[..., None, None]
    curvature = torch.eye(2, dtype=points.dtype) - HUBER_RADIAL * outside * unit[..., :, None] * unit[..., None, :]
    weighted = (curvature * irls[..., None, None]) @ jac                                 # (B, N, 2, P)
    flat = jac.shape[0], -1, jac.shape[-1]
    hessian = jac.reshape(flat).transpose(1, 2) @ weighted.reshape(flat)
    n_id = problem.n_identity
    ids = slice(N_POSE, N_POSE + n_id)
    gradient[:, ids] += 2 * config.identity_prior * shape[:, :n_id]
    gradient[:, N_POSE + n_id:] += config.expression_prior
    diag = torch.diagonal(hessian, dim1=1, dim2=2)
    diag[:, ids] += 2 * config.identity_prior
    return hessian, gradient


def _free_mask(shape: torch.Tensor, gradient: torch.Tensor, n_identity: int = 100) -> torch.Tensor:
    """``(B, P)`` True for parameters free in this step (expressions at a bound pushed outwards are not)."""
    expression, grad = shape[:, n_identity:], gradient[:, N_POSE + n_identity:]
    fixed = ((expression <= 0) & (grad > 0)) | ((expression >= 1) & (grad < 0))
    free = torch.ones_like(gradient, dtype=torch.bool)
    free[:, N_POSE + n_identity:] = ~fixed
    return free


def _step(hessian: torch.Tensor, gradient: torch.Tensor, free: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
    """Damped, masked Newton step ``(B, P)``."""
    mask = free.to(hessian.dtype)
    h = hessian * mask[:, :, None] * mask[:, None, :]
    diag = torch.diagonal(h, dim1=1, dim2=2)
    scaled = diag * (1 + damping[:, None]) + 1e-9
    h = h - torch.diag_embed(diag) + torch.diag_embed(torch.where(free, scaled, torch.ones_like(diag)))
    return -torch.linalg.solve(h, gradient * mask)


@dataclass
class _Iterate:
    """The current solution of B faces: rotation ``(B, 3, 3)``, translation ``(B, 3)``,
    shape ``(B, 153)`` (identity, expression), view offsets (``(B, N, 3)`` or a 0-d zero),
    posed points ``(B, N, 3)`` and objective ``(B,)``."""

    rotation: torch.Tensor
    translation: torch.Tensor
    shape: torch.Tensor
    offsets: torch.Tensor
    points: torch.Tensor
    loss: torch.Tensor

    def where(self, mask: torch.Tensor, other: _Iterate) -> _Iterate:
        """Per face: this iterate where ``mask (B,)`` holds, else ``other``."""
        def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a if a.ndim == 0 else torch.where(mask.reshape(-1, *([1] * (a.ndim - 1))), a, b)

        return _Iterate(*(pick(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))


def refine_landmarks(sparse: SparseLandmarks, target: LandmarkTarget, init: FaceCoeffs,
                     config: FitConfig = FitConfig(), solver: SolverConfig = SolverConfig()) -> FaceCoeffs:
    """Refine B warm-started faces (pose, identity, expression) on 2D landmarks.

    sparse: the landmark mapping with its sparse model; target: ``(B, N, 2)`` renderer pixels
    with weights; init: ``FaceCoeffs`` of B faces (camera taken from it, kept fixed).
    config: the objective's weights (``huber_delta``, ``identity_prior``, ``expression_prior``).
    Returns detached :class:`FaceCoeffs`; camera, lighting and albedo are the warm start's.
    """
    batch = target.points.shape[0]
    if init.batch_size != batch:
        raise ValueError(f"init has {init.batch_size} faces but target has {batch}")
    with threads(1), torch.no_grad():
        return _refine(sparse, target, init, config, solver)


def _refine(sparse: SparseLandmarks, target: LandmarkTarget, init: FaceCoeffs, config: FitConfig,
            solver: SolverConfig) -> FaceCoeffs:
    dtype, out_dtype = torch.float64, init.expression.dtype
    base, basis = sparse.point_basis(dtype)
    weight = target.weight.to(dtype)
    problem = _Problem(base, basis, target.points.to(dtype), weight / weight.sum(1, keepdim=True).clamp_min(1e-12),
                       target.scale().to(dtype), init.focal.to(dtype), init.principal.to(dtype))
    damping = torch.full((target.points.shape[0],), solver.damping, dtype=dtype)

    def evaluate(rotation: torch.Tensor, translation: torch.Tensor, shape: torch.Tensor) -> _Iterate:
        offsets = torch.zeros((), dtype=dtype)
        if sparse.mapping.view is not None:
            offsets = sparse.mapping.view.camera_offsets(matrix_to_axis_angle(rotation), translation)
        points = _posed(problem, rotation, translation, shape, offsets)
        loss = _objective(problem, config, points, shape)
        # a step that puts points behind the camera (z >= 0) or overflows is never taken
        bad = ~torch.isfinite(loss) | (points[..., 2] >= -1e-3).any(-1)
        return _Iterate(rotation, translation, shape, offsets, points, torch.where(bad, torch.inf, loss))

    def moved(it: _Iterate, step: torch.Tensor) -> _Iterate:
        shape = it.shape + step[:, N_POSE:]
        shape[:, 100:] = shape[:, 100:].clamp(0, 1)
        return evaluate(axis_angle_to_matrix(step[:, :3]) @ it.rotation, it.translation + step[:, 3:6], shape)

    it = evaluate(axis_angle_to_matrix(init.rotation.to(dtype)), init.translation.to(dtype).clone(),
                  torch.cat([init.identity, init.expression.clamp(0, 1)], 1).to(dtype))
    for _ in range(solver.iterations):
        hessian, gradient = _normal_equations(problem, config, it.rotation, it.points, it.translation, it.shape)
        delta = _step(hessian, gradient, _free_mask(it.shape, gradient), damping)
        full = best = moved(it, solver.step_sizes[0] * delta)
        for alpha in solver.step_sizes[1:]:  # backtracking: keep, per face, the best of these step sizes
            candidate = moved(it, alpha * delta)
            best = candidate.where(candidate.loss < best.loss, best)
        better = best.loss < it.loss
        damping = torch.where(full.loss < it.loss, (damping / 3).clamp_min(solver.min_damping),
                              torch.where(better, damping, damping * 4))
        it = best.where(better, it)
    rotation, translation, shape = it.rotation, it.translation, it.shape
    return FaceCoeffs(shape[:, :100].to(out_dtype), shape[:, 100:].to(out_dtype),
                      matrix_to_axis_angle(rotation).to(out_dtype), translation.to(out_dtype),
                      init.focal, init.principal, init.lighting, init.albedo)
