"""Soft silhouettes: a coverage mask whose boundary moves smoothly with the vertices.

A hard mask (``pix_to_face >= 0``) is piecewise constant, so mask losses give no
gradient. :func:`soft_silhouette` replaces it, only at pixels where the hard mask
changes within their 3x3 neighbourhood, by ``sigmoid(s / sigma)``, where ``s`` is the
distance in pixels from the pixel centre to the nearest silhouette edge of the
faces covering that neighbourhood, positive for covered pixels and negative for
background ones. Elsewhere it equals the hard mask. A silhouette edge is an edge of
a face whose neighbour across it is missing (open boundary) or faces the other way
(front vs back, by the sign of the pixel-space area), i.e. an occluding contour.
At a pixel centre lying exactly on the contour the value is 0.5 from both sides,
so the mask is continuous in the vertices there and differentiable elsewhere.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .rasterize import Fragments


class SoftMask(NamedTuple):
    """alpha ``(B, H, W)`` in [0, 1] (differentiable w.r.t. the screen vertices);
    source ``(B, H, W)`` long: flat pixel index ``(b * H + y) * W + x`` whose colour
    a pixel should show (itself, or for background pixels near the contour the
    neighbouring covered pixel whose face owns the nearest edge)."""

    alpha: torch.Tensor
    source: torch.Tensor


def face_neighbours(faces: torch.Tensor) -> torch.Tensor:
    """``(F, 3)`` long: ``out[f, k]`` is a face sharing the edge of ``f`` opposite corner ``k``
    (vertices ``faces[f, k+1], faces[f, k+2]``), or -1 on an open boundary."""
    a = faces[:, [1, 2, 0]].reshape(-1)
    b = faces[:, [2, 0, 1]].reshape(-1)
    n = int(faces.max()) + 1 if faces.numel() else 1
    key = torch.minimum(a, b) * n + torch.maximum(a, b)
    order = torch.argsort(key, stable=True)
    same = (key[order][1:] == key[order][:-1]).nonzero().squeeze(1)
    out = torch.full_like(key, -1)
    first, second = order[same], order[same + 1]
    out[first] = torch.div(second, 3, rounding_mode="floor")
    out[second] = torch.div(first, 3, rounding_mode="floor")
    return out.view(-1, 3)


def _boundary_pixels(covered: torch.Tensor) -> torch.Tensor:
    """Flat indices of pixels whose 3x3 neighbourhood (inside the image) mixes covered and not."""
    m = covered.to(torch.float32)[:, None]
    grown = F.max_pool2d(m, 3, stride=1, padding=1)
    shrunk = -F.max_pool2d(-m, 3, stride=1, padding=1)
    return (grown != shrunk).reshape(-1).nonzero().squeeze(1)


def _segment_distance(p: torch.Tensor, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Distance ``(...)`` from points ``p (..., 2)`` to segments ``a -> c`` (``(..., 2)`` each)."""
    d = c - a
    t = ((p - a) * d).sum(-1) / (d.square().sum(-1) + 1e-20)
    closest = a + t.clamp(0.0, 1.0)[..., None] * d
    return ((p - closest).square().sum(-1) + 1e-12).sqrt()


def soft_silhouette(screen: torch.Tensor, faces: torch.Tensor, fragments: Fragments, sigma: float,
                    neighbours: torch.Tensor | None = None) -> SoftMask:
    """Soft coverage (see the module docstring) of ``screen (B, V, 3)``, ``faces (F, 3)``.

    sigma: softness in pixels (> 0). neighbours: :func:`face_neighbours` of ``faces``
    (computed when ``None``; pass it to reuse across calls).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    p2f = fragments.pix_to_face
    batch, height, width = p2f.shape
    covered = p2f >= 0
    alpha = covered.to(screen.dtype).reshape(-1)
    source = torch.arange(batch * height * width, device=p2f.device)
    pixel = _boundary_pixels(covered)
    if pixel.numel() == 0 or faces.numel() == 0:
        return SoftMask(alpha.view(batch, height, width), source.view(batch, height, width))
    neighbours = face_neighbours(faces) if neighbours is None else neighbours
    image = torch.div(pixel, height * width, rounding_mode="floor")
    row = torch.div(pixel, width, rounding_mode="floor") % height
    col = pixel % width
    offsets = torch.arange(3, device=p2f.device) - 1
    dy, dx = offsets.repeat_interleave(3), offsets.repeat(3)  # the 3x3 neighbourhood
    padded = F.pad(p2f, (1, 1, 1, 1), value=-1)
    face = padded[image[:, None], row[:, None] + 1 + dy, col[:, None] + 1 + dx]  # (N, 9)
    near_pixel = pixel[:, None] + dy * width + dx
    face, near_pixel = face.repeat_interleave(3, dim=1), near_pixel.repeat_interleave(3, dim=1)  # (N, 27)
    corner = torch.arange(3, device=p2f.device).repeat(9)
    safe = face.clamp(min=0)
    ends = faces[safe]  # (N, 27, 3)
    start = ends.gather(2, ((corner + 1) % 3).expand_as(safe)[..., None]).squeeze(2)
    stop = ends.gather(2, ((corner + 2) % 3).expand_as(safe)[..., None]).squeeze(2)
    valid = (face >= 0) & _is_contour(screen.detach(), faces, neighbours, image, safe, corner)
    xy = screen[..., :2]
    centre = torch.stack([col, row], dim=-1).to(screen.dtype)[:, None, :] + 0.5
    dist = _segment_distance(centre, xy[image[:, None], start], xy[image[:, None], stop])
    dist = torch.where(valid, dist, torch.full_like(dist, float("inf")))
    nearest, best = dist.min(dim=1)
    found = torch.isfinite(nearest)
    inside = covered.reshape(-1)[pixel]
    signed = torch.where(inside, nearest, -nearest)
    keep = found.nonzero().squeeze(1)
    alpha = alpha.index_put((pixel[keep],), torch.sigmoid(signed[keep] / sigma))
    donor = near_pixel.gather(1, best[:, None]).squeeze(1)
    source = source.index_put((pixel[keep],), torch.where(inside, pixel, donor)[keep])
    return SoftMask(alpha.view(batch, height, width), source.view(batch, height, width))


def _is_contour(screen: torch.Tensor, faces: torch.Tensor, neighbours: torch.Tensor, image: torch.Tensor,
                face: torch.Tensor, corner: torch.Tensor) -> torch.Tensor:
    """Whether edge ``corner`` of ``face`` (both ``(N, 27)``) is a contour in image ``image (N,)``."""
    v = screen[:, faces]  # (B, F, 3, 3)
    area = ((v[..., 1, 0] - v[..., 0, 0]) * (v[..., 2, 1] - v[..., 0, 1])
            - (v[..., 1, 1] - v[..., 0, 1]) * (v[..., 2, 0] - v[..., 0, 0]))
    front = area < 0  # (B, F)
    other = neighbours[face, corner]
    rows = image[:, None].expand_as(face)
    return (other < 0) | (front[rows, face] != front[rows, other.clamp(min=0)])
