"""Lambertian shading under 2nd-order spherical-harmonics (SH) lighting, normals, textures.

Lighting model. ``light (B, 9, 3)`` holds, per image and colour channel, the 9 SH
coefficients ``L_k`` of the incoming radiance (an environment map fixed to the
world frame: y up, +z towards the default camera). The outgoing colour of a
Lambertian surface with albedo ``a`` and unit normal ``n`` is

    colour = a * sum_k L_k * H_k(n),      H_k = (A_l / pi) * Y_k,

with the clamped-cosine convolution factors ``A_0 = pi``, ``A_1 = 2 pi / 3``,
``A_2 = pi / 4`` (Ramamoorthi & Hanrahan 2001) and the real SH basis ``Y_k`` in the
order (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2):

    Y = [c0, c1 y, c1 z, c1 x, c2 xy, c2 yz, c3 (3 z^2 - 1), c2 xz, c4 (x^2 - y^2)]
    c0 = 1 / (2 sqrt(pi)), c1 = sqrt(3) c0, c2 = sqrt(15) c0, c3 = sqrt(5) c0 / 2, c4 = c2 / 2.

So a uniform environment of radiance ``E`` has ``L_0 = 2 sqrt(pi) E`` and gives
``colour = a * E`` (see :func:`ambient_light`); :func:`directional_light` adds a
distant light. Normals are unit vectors in the world frame, pointing out of the
surface: for a triangle (v0, v1, v2) the normal is along ``(v1 - v0) x (v2 - v0)``
(counter-clockwise seen from outside, the ICT mesh's winding).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .interpolate import face_attributes_at, foreground, scatter_pixels
from .rasterize import Fragments
from .validation import check_tensor

N_SH = 9
_C0 = 1.0 / (2.0 * math.sqrt(math.pi))
#: Basis constants ``(A_l / pi) * c`` of :func:`sh_basis`, in basis order.
SH_CONSTANTS = (
    _C0,
    2.0 / 3.0 * math.sqrt(3.0) * _C0, 2.0 / 3.0 * math.sqrt(3.0) * _C0, 2.0 / 3.0 * math.sqrt(3.0) * _C0,
    0.25 * math.sqrt(15.0) * _C0, 0.25 * math.sqrt(15.0) * _C0, 0.25 * math.sqrt(5.0) * _C0 / 2.0,
    0.25 * math.sqrt(15.0) * _C0, 0.25 * math.sqrt(15.0) * _C0 / 2.0,
)


class UVTexture(NamedTuple):
    """An albedo texture and where each face corner samples it.

    image: ``(B, 3, Ht, Wt)`` (or ``(1, 3, Ht, Wt)``) linear RGB albedo; row 0 is the top (v = 1).
    corner_uvs: ``(F, 3, 2)`` texture coordinates (u right, v up, both in [0, 1], as in OBJ)
    of each face's three corners, one row per row of ``faces``.
    """

    image: torch.Tensor
    corner_uvs: torch.Tensor


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """Lambertian-convolved SH basis ``H_k(n)``: unit normals ``(..., 3)`` -> ``(..., 9)``."""
    x, y, z = normals.unbind(-1)
    c = SH_CONSTANTS
    return torch.stack([
        torch.full_like(x, c[0]), c[1] * y, c[2] * z, c[3] * x,
        c[4] * x * y, c[5] * y * z, c[6] * (3.0 * z * z - 1.0), c[7] * x * z, c[8] * (x * x - y * y),
    ], dim=-1)


def check_light(light: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B, 9, 3)`` or ``(1, 9, 3)`` -> ``(B, 9, 3)``, else ``ValueError`` naming ``light``."""
    check_tensor("light", light, (None, N_SH, 3))
    if light.shape[0] not in (1, batch):
        raise ValueError(f"light has batch size {light.shape[0]} but the vertices have batch size {batch}")
    return light.expand(batch, N_SH, 3)


def irradiance(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Shading factor ``sum_k L_k H_k(n)``: normals ``(B, ..., 3)``, light ``(B, 9, 3)`` -> ``(B, ..., 3)``."""
    light = check_light(light, normals.shape[0])
    basis = sh_basis(normals)
    flat = basis.reshape(normals.shape[0], -1, N_SH)
    return torch.bmm(flat, light).reshape(normals.shape)


def _quadratic_form(light: torch.Tensor) -> torch.Tensor:
    """``(B, 10, 3)`` weights of ``[1, x, y, z, xy, yz, zx, x^2, y^2, z^2]`` equal to ``sum_k L_k H_k``."""
    rows = [[0.0] * N_SH for _ in range(10)]
    for feature, k, value in ((0, 0, 1.0), (2, 1, 1.0), (3, 2, 1.0), (1, 3, 1.0), (4, 4, 1.0), (5, 5, 1.0),
                              (9, 6, 3.0), (0, 6, -1.0), (6, 7, 1.0), (7, 8, 1.0), (8, 8, -1.0)):
        rows[feature][k] = value * SH_CONSTANTS[k]
    return torch.tensor(rows, dtype=light.dtype, device=light.device) @ light


def irradiance_grouped(normals: torch.Tensor, light: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Like :func:`irradiance` for unit ``normals (N, 3)`` grouped by image: the first
    ``counts[0]`` rows belong to image 0, the next ``counts[1]`` to image 1, ...; ``light (B, 9, 3)``.

    Returns ``(N, 3)``. Evaluates the SH sum as a quadratic form (one small matmul per image).
    """
    weights = _quadratic_form(light)
    features = torch.cat([normals.new_ones(normals.shape[0], 1), normals,
                          normals * normals[:, [1, 2, 0]], normals * normals], dim=1)
    if len(counts) == 1:
        return features @ weights[0]
    parts = torch.split(features, counts)
    return torch.cat([part @ weights[b] for b, part in enumerate(parts)])


def ambient_light(batch_size: int, intensity: float = 1.0, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, 9, 3)`` uniform white light: every normal gets shading factor ``intensity``."""
    light = torch.zeros(batch_size, N_SH, 3, device=device, dtype=dtype)
    light[:, 0] = intensity / _C0
    return light


def directional_light(direction: torch.Tensor, intensity: float = 0.7, ambient: float = 0.3) -> torch.Tensor:
    """``(B, 9, 3)``: white ambient light plus a distant white light towards ``direction (B, 3)``.

    ``direction`` points from the surface to the light (normalised here). The shading
    factor is ``ambient + intensity * max(0, n . d)`` up to the band limit of 2nd-order SH
    (the light's coefficients are ``pi * intensity * Y_k(d)``).
    """
    check_tensor("direction", direction, (None, 3))
    d = F.normalize(direction, dim=-1)
    band = torch.tensor([1.0] + [1.5] * 3 + [4.0] * 5, dtype=d.dtype, device=d.device)  # pi / A_l
    coefficients = math.pi * intensity * sh_basis(d) * band
    light = ambient_light(d.shape[0], ambient, d.device, d.dtype) + coefficients[..., None]
    return light


def _corner_rows(vertices: torch.Tensor, faces: torch.Tensor) -> list[torch.Tensor]:
    """Rows of ``vertices.reshape(-1, 3)`` holding corner k of every face of every image."""
    batch, n_vertices = vertices.shape[:2]
    offset = (torch.arange(batch, device=faces.device) * n_vertices)[:, None]
    return [(faces[:, k][None] + offset).reshape(-1) for k in range(3)]


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, F, 3)`` un-normalised face normals ``(v1 - v0) x (v2 - v0)`` (length = 2 x area)."""
    flat = vertices.reshape(-1, 3)
    v0, v1, v2 = (flat.index_select(0, rows) for rows in _corner_rows(vertices, faces))
    return _cross(v1 - v0, v2 - v0).view(vertices.shape[0], -1, 3)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Area-weighted unit vertex normals ``(B, V, 3)`` from ``vertices (B, V, 3)``, ``faces (F, 3)``.

    Each vertex sums the cross products of its faces (so larger faces weigh more) and the
    sum is normalised; vertices in no face get a zero normal. Differentiable.
    """
    flat = vertices.reshape(-1, 3)
    rows = _corner_rows(vertices, faces)
    v0, v1, v2 = (flat.index_select(0, r) for r in rows)
    normals = _cross(v1 - v0, v2 - v0)
    summed = flat.new_zeros(flat.shape)
    for r in rows:
        summed = summed.index_add(0, r, normals)
    summed = summed.view(vertices.shape)
    return summed / (summed.square().sum(-1, keepdim=True) + eps).sqrt()


def lambertian(albedo: torch.Tensor, normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """``albedo * irradiance(normals, light)``: ``(B, ..., 3)`` each, light ``(B, 9, 3)``."""
    return albedo * irradiance(normals, light)


def texture_at(image: torch.Tensor, uv: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    """Bilinear samples ``(N, 3)`` of textures ``image (B, 3, Ht, Wt)`` at ``uv (N, 2)`` in image ``image_index``.

    Same values as ``grid_sample(..., align_corners=False, padding_mode="border")`` with
    ``grid = (2u - 1, 1 - 2v)``: texel ``(i, j)`` has its centre at ``u = (j + 0.5) / Wt``,
    ``v = 1 - (i + 0.5) / Ht``.
    """
    batch, channels, height, width = image.shape
    x = uv[:, 0] * width - 0.5
    y = (1.0 - uv[:, 1]) * height - 0.5
    x0, y0 = x.detach().floor(), y.detach().floor()
    wx, wy = (x - x0)[:, None], (y - y0)[:, None]
    texels = image.permute(0, 2, 3, 1).reshape(-1, channels)
    base = image_index * (height * width)

    def fetch(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        row = yy.long().clamp(0, height - 1)
        col = xx.long().clamp(0, width - 1)
        return texels.index_select(0, base + row * width + col)

    top = fetch(y0, x0) * (1 - wx) + fetch(y0, x0 + 1) * wx
    bottom = fetch(y0 + 1, x0) * (1 - wx) + fetch(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy


def check_texture(texture: UVTexture, batch: int, n_faces: int) -> UVTexture:
    """Shapes of a :class:`UVTexture` for ``batch`` images of a mesh with ``n_faces`` faces."""
    image = check_tensor("texture.image", texture.image, (None, 3, None, None))
    uvs = check_tensor("texture.corner_uvs", texture.corner_uvs, (n_faces, 3, 2))
    if image.shape[0] not in (1, batch):
        raise ValueError(f"texture.image has batch size {image.shape[0]} but the vertices have batch size {batch}")
    if image.shape[2] == 0 or image.shape[3] == 0:
        raise ValueError(f"texture.image is empty: {tuple(image.shape)}")
    return UVTexture(image.expand(batch, -1, -1, -1), uvs)


def sample_texture(texture: UVTexture, fragments: Fragments) -> torch.Tensor:
    """Albedo per pixel ``(B, H, W, 3)``: ``texture`` sampled at interpolated UVs, 0 at background."""
    batch = fragments.pix_to_face.shape[0]
    texture = check_texture(texture, batch, texture.corner_uvs.shape[0])
    fg = foreground(fragments)
    uv = face_attributes_at(texture.corner_uvs[None].expand(batch, -1, -1, -1), fg)
    return scatter_pixels(texture_at(texture.image, uv, fg.image), fg, tuple(fragments.pix_to_face.shape))
