"""Interpolate mesh attributes over the pixels of :class:`Fragments` (differentiable).

Only covered pixels are computed; background pixels are zero. Gradients flow to
the attributes and, through ``fragments.bary``, to the vertex positions.
"""

from __future__ import annotations

import torch

from .rasterize import Foreground, Fragments
from .validation import check_batch


def foreground(fragments: Fragments) -> Foreground:
    """Flatten the covered pixels of ``fragments`` (see :class:`Foreground`)."""
    batch, height, width = fragments.pix_to_face.shape
    flat = fragments.pix_to_face.reshape(-1)
    pixel = (flat >= 0).nonzero().squeeze(1)
    image = torch.div(pixel, height * width, rounding_mode="floor")
    bary = fragments.bary.reshape(-1, 3).index_select(0, pixel)
    return Foreground(pixel, image, flat.index_select(0, pixel), bary)


def scatter_pixels(values: torch.Tensor, fg: Foreground, shape: tuple[int, int, int]) -> torch.Tensor:
    """Place per-covered-pixel ``values (N, C)`` into a zero image ``(B, H, W, C)``."""
    batch, height, width = shape
    out = values.new_zeros(batch * height * width, values.shape[-1])
    return out.index_put((fg.pixel,), values).view(batch, height, width, -1)


def _check_fragments(fragments: Fragments) -> tuple[int, int, int]:
    if fragments.pix_to_face.ndim != 3 or fragments.bary.shape != fragments.pix_to_face.shape + (3,):
        raise ValueError(f"fragments must hold pix_to_face (B, H, W) and bary (B, H, W, 3), got "
                         f"{tuple(fragments.pix_to_face.shape)} and {tuple(fragments.bary.shape)}")
    return tuple(fragments.pix_to_face.shape)  # type: ignore[return-value]


def _batched(name: str, value: torch.Tensor, batch: int, ndim: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim not in (ndim - 1, ndim):
        raise ValueError(f"{name} must have {ndim - 1} or {ndim} dimensions (optional batch first), "
                         f"got {None if not isinstance(value, torch.Tensor) else tuple(value.shape)}")
    value = value if value.ndim == ndim else value.unsqueeze(0)
    return check_batch(name, value, batch)


def vertex_attributes_at(attributes: torch.Tensor, faces: torch.Tensor, fg: Foreground) -> torch.Tensor:
    """Per-vertex ``attributes (B, V, C)`` interpolated at the covered pixels -> ``(N, C)``."""
    n_vertices, channels = attributes.shape[1], attributes.shape[2]
    corner = faces.index_select(0, fg.face) + (fg.image * n_vertices)[:, None]  # (N, 3)
    values = attributes.reshape(-1, channels).index_select(0, corner.reshape(-1)).view(-1, 3, channels)
    return (values * fg.bary[..., None]).sum(dim=1)


def face_attributes_at(attributes: torch.Tensor, fg: Foreground) -> torch.Tensor:
    """Per-face-corner ``attributes (B, F, 3, C)`` interpolated at the covered pixels -> ``(N, C)``."""
    rows = fg.face + fg.image * attributes.shape[1]
    values = attributes.reshape(-1, 3, attributes.shape[-1]).index_select(0, rows)
    return (values * fg.bary[..., None]).sum(dim=1)


def interpolate_vertex_attributes(attributes: torch.Tensor, faces: torch.Tensor,
                                  fragments: Fragments) -> torch.Tensor:
    """Per-vertex ``attributes (B, V, C)`` or ``(V, C)`` -> per-pixel ``(B, H, W, C)``.

    ``out[b, y, x] = sum_k bary[b, y, x, k] * attributes[b, faces[f, k]]`` with
    ``f = pix_to_face[b, y, x]``; zero where ``f == -1``. faces: ``(F, 3)`` long.
    """
    shape = _check_fragments(fragments)
    attributes = _batched("attributes", attributes, shape[0], 3)
    if faces.numel() and int(faces.max()) >= attributes.shape[1]:
        raise ValueError(f"faces index vertex {int(faces.max())} but attributes have {attributes.shape[1]} vertices")
    fg = foreground(fragments)
    return scatter_pixels(vertex_attributes_at(attributes, faces.long(), fg), fg, shape)


def interpolate_face_attributes(attributes: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Per-face-corner ``attributes (B, F, 3, C)`` or ``(F, 3, C)`` -> per-pixel ``(B, H, W, C)``.

    ``out[b, y, x] = sum_k bary[b, y, x, k] * attributes[b, f, k]`` with
    ``f = pix_to_face[b, y, x]``; zero where ``f == -1``. Use it for attributes that are
    discontinuous across faces, such as UV coordinates at seams.
    """
    shape = _check_fragments(fragments)
    attributes = _batched("attributes", attributes, shape[0], 4)
    if attributes.shape[2] != 3:
        raise ValueError(f"attributes must have shape (B, F, 3, C), got {tuple(attributes.shape)}")
    fg = foreground(fragments)
    if fg.face.numel() and int(fg.face.max()) >= attributes.shape[1]:
        raise ValueError(f"fragments reference face {int(fg.face.max())} but attributes have "
                         f"{attributes.shape[1]} faces")
    return scatter_pixels(face_attributes_at(attributes, fg), fg, shape)
