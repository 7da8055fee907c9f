"""Z-buffered triangle rasterization in pure PyTorch (CPU and CUDA, no compiled code).

Input vertices are already in screen space (see :meth:`Camera.to_screen`): pixel x,
pixel y (x right, y down, pixel ``(i, j)`` centred at ``(j + 0.5, i + 0.5)``) and
camera depth z. A pixel belongs to a triangle when its centre lies inside or on
the triangle's edges; the visible triangle is the one with the smallest depth at
the pixel centre, ties going to the smallest face index.

Like nvdiffrast's rasterize/interpolate split, visibility is found without
gradients (:func:`visible_faces`) and the barycentrics of the winning triangle at
each covered pixel are then recomputed differentiably (:func:`covered_samples`,
:func:`fragments_from_faces`; the backward pass is written out by hand), so gradients
flow from ``bary`` and ``zbuf`` to the vertex positions. Coverage itself is piecewise
constant: for gradients at silhouettes see :mod:`facecast.render.silhouette`.

Fast path: every triangle's pixel bounding box is enumerated as (triangle, pixel)
pairs with ``repeat_interleave`` (triangles of a 224 px face are 1-4 px, so pairs
are few), inside/depth tests run on all pairs at once, and ``scatter_reduce(amin)``
builds the z-buffer. Triangles whose box exceeds ``chunk_pairs`` pixels are cut
into bands of rows and pairs are processed in chunks, so memory stays bounded.
:func:`rasterize_reference` is the same algorithm as plain loops, for tests.

Front faces: a triangle is front-facing when its signed area in pixel space
``(x1 - x0)(y2 - y0) - (y1 - y0)(x2 - x0)`` is negative, i.e. counter-clockwise as
seen by the camera in a y-up picture (the ICT mesh's outward winding).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .validation import check_faces, check_image_size, check_screen_vertices

#: Default number of (triangle, pixel) pairs tested at once (bounds peak memory).
CHUNK_PAIRS = 1 << 18
#: Default near plane (camera-frame depth) of perspective rasterization.
Z_NEAR = 1e-3


class Fragments(NamedTuple):
    """What covers each pixel.

    pix_to_face: ``(B, H, W)`` long; ``pix_to_face[b, y, x] = f`` means face ``f`` (a row of
        ``faces``) is the nearest triangle covering the centre of pixel row ``y``, column
        ``x`` of image ``b``; ``-1`` means background.
    bary: ``(B, H, W, 3)`` barycentric weights of the face's three vertices at that pixel
        centre (perspective-correct for perspective cameras), differentiable w.r.t. the
        vertices; zeros at background.
    zbuf: ``(B, H, W)`` camera-frame depth of the surface at the pixel centre,
        differentiable; ``-1`` at background.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool: pixel is covered by a face."""
        return self.pix_to_face >= 0


def triangle_table(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, perspective: bool) -> torch.Tensor:
    """Per-triangle constants ``(16, N)`` from corner coordinates ``x, y, z`` each ``(3, N)``.

    Rows: for the edge opposite corner ``i``, its start ``a = v[i+1]`` and direction
    ``d = v[i+2] - v[i+1]`` (4 rows x 3 edges), then the signed pixel-space area, then
    ``1 / z_i`` (perspective) or ``z_i`` (orthographic) for the three corners.
    """
    rows = []
    for i in range(3):
        a, b = (i + 1) % 3, (i + 2) % 3
        rows += [x[a], y[a], x[b] - x[a], y[b] - y[a]]
    rows.append((x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]))
    depth = 1.0 / z if perspective else z
    return torch.cat([torch.stack(rows), depth])


def screen_barycentrics(table: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics ``(3, N)`` of points ``px, py (N,)`` in triangles ``table (16, N)``.

    The point is inside (or on an edge of) its triangle when all three are ``>= 0``.
    """
    e = table[:12].view(3, 4, -1)
    return (e[:, 2] * (py - e[:, 1]) - e[:, 3] * (px - e[:, 0])) / table[12]


def depth_correct(depth_terms: torch.Tensor, lam: torch.Tensor,
                  perspective: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bary (3, N), depth (N,))`` from screen barycentrics ``lam (3, N)``.

    depth_terms: rows 13-15 of :func:`triangle_table`. Perspective: ``bary_i = (lam_i / z_i) /
    sum_j(lam_j / z_j)`` and ``depth = 1 / sum_j(lam_j / z_j)``; orthographic: ``lam`` and
    ``sum_j lam_j z_j``.
    """
    t = depth_terms * lam
    s = t[0] + t[1] + t[2]
    if perspective:
        return t / s, 1.0 / s
    return lam, s


def _corners(screen: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(3, 3, B, F)``: [coordinate (x, y, z), corner, image, face]."""
    batch, n_faces = screen.shape[0], faces.shape[0]
    coords = screen.permute(2, 0, 1).contiguous()  # (3, B, V)
    corners = torch.gather(coords, 2, faces.t().reshape(1, 1, -1).expand(3, batch, 3 * n_faces))
    return corners.view(3, batch, 3, n_faces).transpose(1, 2).contiguous()


def _keep_triangles(c: torch.Tensor, size: tuple[int, int], perspective: bool, cull_backfaces: bool,
                    z_near: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``b * F + f`` of drawable triangles and their pixel boxes ``(4, T)`` x0, x1, y0, y1."""
    height, width = size
    x, y, z = c
    area = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    keep = area < 0 if cull_backfaces else area != 0
    if perspective:
        keep &= (z[0] > z_near) & (z[1] > z_near) & (z[2] > z_near)
    x_first = torch.ceil(torch.minimum(torch.minimum(x[0], x[1]), x[2]) - 0.5).clamp_(min=0)
    x_last = torch.floor(torch.maximum(torch.maximum(x[0], x[1]), x[2]) - 0.5).clamp_(max=width - 1)
    y_first = torch.ceil(torch.minimum(torch.minimum(y[0], y[1]), y[2]) - 0.5).clamp_(min=0)
    y_last = torch.floor(torch.maximum(torch.maximum(y[0], y[1]), y[2]) - 0.5).clamp_(max=height - 1)
    keep &= (x_last >= x_first) & (y_last >= y_first)
    index = keep.view(-1).nonzero().squeeze(1)
    box = torch.stack([x_first, x_last, y_first, y_last]).view(4, -1).index_select(1, index)
    return index, box.long()


def _split_tall(index: torch.Tensor, box: torch.Tensor, chunk_pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut boxes holding more than ``chunk_pairs`` pixels into bands of whole rows."""
    width = box[1] - box[0] + 1
    height = box[3] - box[2] + 1
    if not bool((width * height > chunk_pairs).any()):
        return index, box
    rows = (chunk_pairs // width).clamp(min=1)
    bands = (height + rows - 1) // rows
    index, rows = index.repeat_interleave(bands), rows.repeat_interleave(bands)
    box = box.repeat_interleave(bands, dim=1)
    starts = torch.cumsum(bands, 0) - bands
    band = torch.arange(len(index), device=index.device) - starts.repeat_interleave(bands)
    y0 = box[2] + band * rows
    y1 = torch.minimum(y0 + rows - 1, box[3])
    return index, torch.stack([box[0], box[1], y0, y1])


def _covered_pairs(table: torch.Tensor, index: torch.Tensor, box: torch.Tensor, n_faces: int,
                   size: tuple[int, int], perspective: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pixel, depth, face)`` for every pixel centre inside a triangle, for one chunk of boxes.

    table: ``(16, T)`` of the chunk's triangles; index: ``(T,)`` flat ``b * F + f``;
    box: ``(4, T)``; pixel is the flat index ``(b * H + y) * W + x``.
    """
    height, width = size
    box_w = box[1] - box[0] + 1
    counts = box_w * (box[3] - box[2] + 1)
    total = int(counts.sum())
    pair = torch.repeat_interleave(torch.arange(len(index), device=index.device), counts, output_size=total)
    local = torch.arange(total, device=index.device) - (torch.cumsum(counts, 0) - counts).index_select(0, pair)
    pair_w = box_w.index_select(0, pair)
    row = torch.div(local, pair_w, rounding_mode="floor")
    col = local - row * pair_w + box[0].index_select(0, pair)
    row += box[2].index_select(0, pair)
    dtype = table.dtype
    rows = torch.gather(table[:13], 1, pair.expand(13, total))  # gather beats index_select(1) on CPU
    lam = screen_barycentrics(rows, col.to(dtype) + 0.5, row.to(dtype) + 0.5)
    hit = ((lam[0] >= 0) & (lam[1] >= 0) & (lam[2] >= 0)).nonzero().squeeze(1)
    pair = pair.index_select(0, hit)
    _, depth = depth_correct(table[13:].index_select(1, pair), lam.index_select(1, hit), perspective)
    flat = index.index_select(0, pair)
    batch = torch.div(flat, n_faces, rounding_mode="floor")
    pixel = (batch * height + row.index_select(0, hit)) * width + col.index_select(0, hit)
    return pixel, depth, flat - batch * n_faces


@torch.no_grad()
def visible_faces(screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                  perspective: bool = True, cull_backfaces: bool = False, z_near: float = Z_NEAR,
                  chunk_pairs: int = CHUNK_PAIRS) -> torch.Tensor:
    """``pix_to_face (B, H, W)`` long: the nearest face covering each pixel centre, -1 if none.

    screen: ``(B, V, 3)`` pixel x, pixel y, depth. faces: ``(F, 3)`` long vertex indices.
    perspective: the depth is a perspective camera's z: triangles with a vertex at
    ``z <= z_near`` are skipped and depth is interpolated perspective-correctly.
    cull_backfaces: skip triangles whose pixel-space signed area is >= 0 (back faces).
    chunk_pairs: at most about this many (triangle, pixel) pairs are tested at once.
    """
    height, width = size = check_image_size(image_size)
    batch, n_faces = screen.shape[0], faces.shape[0]
    pix_to_face = torch.full((batch * height * width,), -1, dtype=torch.long, device=screen.device)
    if n_faces == 0:
        return pix_to_face.view(batch, height, width)
    c = _corners(screen, faces)
    index, box = _split_tall(*_keep_triangles(c, size, perspective, cull_backfaces, z_near), chunk_pairs)
    c = c.view(3, 3, -1).index_select(2, index)
    table = triangle_table(c[0], c[1], c[2], perspective)
    ends = torch.cumsum((box[1] - box[0] + 1) * (box[3] - box[2] + 1), 0)
    total = int(ends[-1]) if len(ends) else 0
    cuts = torch.searchsorted(ends, torch.arange(chunk_pairs, max(total, chunk_pairs), chunk_pairs,
                                                 device=ends.device), right=True)
    bounds = [0] + cuts.tolist() + [len(index)]
    found = [_covered_pairs(table[:, s:e], index[s:e], box[:, s:e], n_faces, size, perspective)
             for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
    if not found:
        return pix_to_face.view(batch, height, width)
    pixel, depth, face = found[0] if len(found) == 1 else (torch.cat(parts) for parts in zip(*found))
    zbuf = torch.full(pix_to_face.shape, math.inf, dtype=depth.dtype, device=depth.device)
    zbuf.scatter_reduce_(0, pixel, depth, reduce="amin")
    best = (depth == zbuf.index_select(0, pixel)).nonzero().squeeze(1)
    winner = torch.full_like(pix_to_face, n_faces)
    winner.scatter_reduce_(0, pixel.index_select(0, best), face.index_select(0, best), reduce="amin")
    return torch.where(winner < n_faces, winner, pix_to_face).view(batch, height, width)


class Foreground(NamedTuple):
    """The covered pixels of a batch of images, flattened (``N`` of them, in pixel order).

    pixel ``(N,)``: flat index ``(b * H + y) * W + x``; image ``(N,)``: ``b`` (non-decreasing);
    face ``(N,)``: the face at that pixel; bary ``(N, 3)``: its barycentric weights.
    """

    pixel: torch.Tensor
    image: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor


class _PixelBarycentrics(torch.autograd.Function):
    """``(points (M, 3), corner (3, N), px, py (N,))`` -> ``(bary (3, N), depth (N,))``, analytic backward.

    ``points`` are flat screen vertices and ``corner[k, n]`` the row of corner ``k`` of the
    triangle of sample ``n``. Same quantities as :func:`screen_barycentrics` +
    :func:`depth_correct` (equal up to rounding), in few passes and without an autograd
    graph of ~40 small ops: the backward pass is written out by hand.
    """

    @staticmethod
    def forward(ctx, points, corner, px, py, perspective):  # noqa: D102
        flat = corner.reshape(-1)
        x, y, z = (points[:, c].index_select(0, flat).view(3, -1) for c in range(3))
        xn, yn, xp, yp = x.roll(-1, 0), y.roll(-1, 0), x.roll(1, 0), y.roll(1, 0)  # corners i + 1, i + 2
        w = (xp - xn) * (py - yn) - (yp - yn) * (px - xn)  # edge functions; their sum is the area
        area = w.sum(0)
        lam = w / area
        if perspective:
            t = lam / z
            s = t.sum(0)
            bary, depth = t / s, 1.0 / s
        else:
            bary, depth = lam, (lam * z).sum(0)
        ctx.save_for_backward(x, y, z, corner, px, py, area, lam, bary, depth)
        ctx.perspective, ctx.n_points = perspective, points.shape[0]
        return bary, depth

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_b, grad_d):  # noqa: D102
        x, y, z, corner, px, py, area, lam, bary, depth = ctx.saved_tensors
        if ctx.perspective:  # t = lam / z, s = sum(t), bary = t / s, depth = 1 / s
            g_t = (grad_b - (grad_b * bary).sum(0)) * depth - grad_d * depth * depth
            g_lam, g_z = g_t / z, -g_t * lam / (z * z)
        else:  # bary = lam, depth = sum(lam * z)
            g_lam, g_z = grad_b + grad_d * z, grad_d * lam
        g_w = (g_lam - (g_lam * lam).sum(0)) / area
        # w_i = (x[i+2] - x[i+1]) (py - y[i+1]) - (y[i+2] - y[i+1]) (px - x[i+1]): corner k appears in
        # w_{k-1} (as i + 1) and w_{k+1} (as i + 2); with a = y - py, c = x - px:
        # dL/dx_k = g_w[k-1] a[k+1] - g_w[k+1] a[k-1],  dL/dy_k = g_w[k+1] c[k-1] - g_w[k-1] c[k+1].
        before, after = g_w.roll(1, 0), g_w.roll(-1, 0)  # g_w[k-1], g_w[k+1]
        a, c = y - py, x - px
        grad = torch.stack([before * a.roll(-1, 0) - after * a.roll(1, 0),
                            after * c.roll(1, 0) - before * c.roll(-1, 0), g_z])  # (3 coords, 3, N)
        grad_points = grad.new_zeros(3, ctx.n_points)
        flat = corner.reshape(-1)
        for coordinate in range(3):
            grad_points[coordinate].index_add_(0, flat, grad[coordinate].reshape(-1))
        grad_points = grad_points.t()
        return grad_points, None, None, None, None


def covered_samples(screen: torch.Tensor, faces: torch.Tensor, pix_to_face: torch.Tensor,
                    perspective: bool = True) -> tuple[Foreground, torch.Tensor]:
    """Differentiable barycentrics and depth ``(N,)`` at the covered pixel centres of ``pix_to_face``.

    screen ``(B, V, 3)`` (may require grad), faces ``(F, 3)``, pix_to_face ``(B, H, W)``.
    """
    batch, height, width = pix_to_face.shape
    flat = pix_to_face.reshape(-1)
    pixel = (flat >= 0).nonzero().squeeze(1)
    face = flat.index_select(0, pixel)
    image = torch.div(pixel, height * width, rounding_mode="floor")
    rest = pixel - image * (height * width)
    row = torch.div(rest, width, rounding_mode="floor")
    col = rest - row * width
    corner = faces.index_select(0, face).t() + image * screen.shape[1]  # (3, N) rows of the flat screen
    dtype = screen.dtype
    bary, depth = _PixelBarycentrics.apply(screen.reshape(-1, 3), corner, col.to(dtype) + 0.5,
                                           row.to(dtype) + 0.5, perspective)
    return Foreground(pixel, image, face, bary.t()), depth


def fragments_from_samples(fg: Foreground, depth: torch.Tensor, pix_to_face: torch.Tensor) -> Fragments:
    """:class:`Fragments` holding the samples of :func:`covered_samples` as images."""
    batch, height, width = pix_to_face.shape
    bary = fg.bary.new_zeros(batch * height * width, 3).index_put((fg.pixel,), fg.bary)
    zbuf = depth.new_full((batch * height * width,), -1.0).index_put((fg.pixel,), depth)
    return Fragments(pix_to_face, bary.view(batch, height, width, 3), zbuf.view(batch, height, width))


def fragments_from_faces(screen: torch.Tensor, faces: torch.Tensor, pix_to_face: torch.Tensor,
                         perspective: bool = True) -> Fragments:
    """Differentiable barycentrics and depth of the faces in ``pix_to_face`` at pixel centres.

    screen ``(B, V, 3)`` (may require grad), faces ``(F, 3)``, pix_to_face ``(B, H, W)``
    (from :func:`visible_faces` or another rasterizer) -> :class:`Fragments`.
    """
    return fragments_from_samples(*covered_samples(screen, faces, pix_to_face, perspective), pix_to_face)


def rasterize(screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
              perspective: bool = True, cull_backfaces: bool = False, z_near: float = Z_NEAR,
              chunk_pairs: int = CHUNK_PAIRS) -> Fragments:
    """Rasterize batched meshes given in screen space.

    screen: ``(B, V, 3)`` float: pixel x, pixel y, camera depth (``camera.to_screen(vertices)``).
    faces: ``(F, 3)`` long, shared by the batch. image_size: ``(H, W)``.
    Returns :class:`Fragments` (``pix_to_face (B, H, W)``, ``bary (B, H, W, 3)``,
    ``zbuf (B, H, W)``); see :func:`visible_faces` for the options.
    """
    faces = check_faces(faces, check_screen_vertices(screen).shape[1]).to(screen.device)
    pix_to_face = visible_faces(screen.detach(), faces, image_size, perspective=perspective,
                                cull_backfaces=cull_backfaces, z_near=z_near, chunk_pairs=chunk_pairs)
    return fragments_from_faces(screen, faces, pix_to_face, perspective)
