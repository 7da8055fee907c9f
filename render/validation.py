"""Input checks shared by the renderer's public functions (clear ``ValueError``s)."""

from __future__ import annotations

import torch


def check_image_size(image_size) -> tuple[int, int]:
    """``(H, W)`` positive ints, or ``ValueError`` naming ``image_size``."""
    try:
        height, width = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (height, width), got {image_size!r}")
    return height, width


def check_tensor(name: str, value, shape: tuple[int | None, ...], floating: bool = True) -> torch.Tensor:
    """``value`` is a tensor of ``shape`` (``None`` = any size); floating point when asked."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        raise ValueError(f"{name} must have shape {want}, got {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {value.dtype}")
    return value


def check_finite(name: str, value: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(value.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return value


def check_screen_vertices(screen: torch.Tensor, name: str = "screen") -> torch.Tensor:
    """``(B, V, 3)`` finite float with ``B >= 1``."""
    check_tensor(name, screen, (None, None, 3))
    if screen.shape[0] == 0:
        raise ValueError(f"{name} has batch size 0")
    return check_finite(name, screen)


def check_faces(faces: torch.Tensor, n_vertices: int, name: str = "faces") -> torch.Tensor:
    """``(F, 3)`` integer indices in ``[0, n_vertices)``; returned as long."""
    check_tensor(name, faces, (None, 3), floating=False)
    if faces.dtype in (torch.bool,) or faces.is_floating_point() or faces.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got {faces.dtype}")
    if faces.numel():
        low, high = int(faces.min()), int(faces.max())
        if low < 0 or high >= n_vertices:
            raise ValueError(f"{name} index out of range: values span [{low}, {high}] "
                             f"but there are {n_vertices} vertices")
    return faces.long()


def check_batch(name: str, value: torch.Tensor, batch: int) -> torch.Tensor:
    """``value`` has leading size ``batch`` or 1 (then expanded to ``batch``)."""
    if value.shape[0] == batch:
        return value
    if value.shape[0] == 1:
        return value.expand(batch, *value.shape[1:])
    raise ValueError(f"{name} has batch size {value.shape[0]} but the vertices have batch size {batch}")


def check_same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors are on different devices: {devices}")
