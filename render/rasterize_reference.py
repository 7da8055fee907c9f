"""A slow, readable rasterizer: the specification that :func:`rasterize` is tested against.

It loops over images, faces and the pixels of each face's bounding box, and keeps
per pixel the nearest face (smallest depth; on equal depth the smallest face index,
because faces are visited in order and only a strictly nearer one replaces it).
Arithmetic is done one scalar at a time in the input's precision (numpy scalars),
in the same order of operations as :func:`facecast.render.rasterize.barycentrics`,
so both give bit-identical results. No gradients.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .rasterize import Z_NEAR, Fragments
from .validation import check_faces, check_image_size, check_screen_vertices


def _triangle_constants(v, num, perspective):
    """Edges (start, direction) opposite each vertex, signed area and depth terms."""
    edges = []
    for i in range(3):
        a, b = v[(i + 1) % 3], v[(i + 2) % 3]
        edges.append((a[0], a[1], b[0] - a[0], b[1] - a[1]))
    (x0, y0, _), (x1, y1, _), (x2, y2, _) = v
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    depth_terms = [num(1.0) / p[2] if perspective else p[2] for p in v]
    return edges, area, depth_terms


def _pixel_sample(edges, area, depth_terms, px, py, num, perspective):
    """(inside, bary, depth) of one triangle at one pixel centre (bary, depth ``None`` outside)."""
    lam = []
    for ax, ay, dx, dy in edges:
        lam.append((dx * (py - ay) - dy * (px - ax)) / area)
    inside = all(value >= 0 for value in lam)
    if not inside:
        return False, None, None
    t = [d * value for d, value in zip(depth_terms, lam)]
    s = t[0] + t[1] + t[2]
    if perspective:
        return inside, [value / s for value in t], num(1.0) / s
    return inside, lam, s


def _pixel_box(v, height, width):
    """Inclusive pixel index ranges whose centres may lie in the triangle."""
    xs, ys = [p[0] for p in v], [p[1] for p in v]
    x_first = max(math.ceil(min(xs) - 0.5), 0)
    x_last = min(math.floor(max(xs) - 0.5), width - 1)
    y_first = max(math.ceil(min(ys) - 0.5), 0)
    y_last = min(math.floor(max(ys) - 0.5), height - 1)
    return range(int(x_first), int(x_last) + 1), range(int(y_first), int(y_last) + 1)


def rasterize_reference(screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                        perspective: bool = True, cull_backfaces: bool = False,
                        z_near: float = Z_NEAR) -> Fragments:
    """Same contract as :func:`facecast.render.rasterize.rasterize`, as plain loops, without grad."""
    height, width = check_image_size(image_size)
    faces = check_faces(faces, check_screen_vertices(screen).shape[1])
    num = np.float64 if screen.dtype == torch.float64 else np.float32
    points = screen.detach().cpu().numpy().astype(num)
    batch = screen.shape[0]
    pix_to_face = np.full((batch, height, width), -1, dtype=np.int64)
    bary = np.zeros((batch, height, width, 3), dtype=num)
    zbuf = np.full((batch, height, width), np.inf, dtype=num)
    for b in range(batch):
        for f, corners in enumerate(faces.tolist()):
            v = [[num(c) for c in points[b, k]] for k in corners]
            edges, area, depth_terms = _triangle_constants(v, num, perspective)
            if area == 0 or (cull_backfaces and area >= 0):
                continue
            if perspective and not all(p[2] > z_near for p in v):
                continue
            columns, rows = _pixel_box(v, height, width)
            for y in rows:
                for x in columns:
                    inside, weights, depth = _pixel_sample(edges, area, depth_terms,
                                                           num(x) + num(0.5), num(y) + num(0.5), num, perspective)
                    if inside and depth < zbuf[b, y, x]:
                        zbuf[b, y, x], pix_to_face[b, y, x], bary[b, y, x] = depth, f, weights
    zbuf[pix_to_face < 0] = -1.0
    as_tensor = lambda a: torch.as_tensor(a, device=screen.device)  # noqa: E731
    return Fragments(as_tensor(pix_to_face), as_tensor(bary), as_tensor(zbuf))
