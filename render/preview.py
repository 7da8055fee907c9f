"""Pictures for humans: shaded meshes, wireframes and landmark dots over photos; PNG and MP4.

Images here are numpy ``uint8 (H, W, 3)`` RGB. Points are in the renderer's pixel
coordinates (x right, y down, pixel ``(i, j)`` centred at ``(j + 0.5, i + 0.5)``); OpenCV
draws at integer pixel centres, so they are shifted by -0.5 before drawing. Files are
written atomically: to a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch

_SUBPIXEL_BITS = 4  # OpenCV fixed-point drawing: coordinates in 1/16 pixel


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] (tensor or array) or uint8 -> ``uint8 (H, W, 3)`` (clipped, rounded)."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image must have shape (H, W, 3) with H, W >= 1, got {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(np.clip(np.rint(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8))


def _points(name: str, points: torch.Tensor | np.ndarray) -> np.ndarray:
    array = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise ValueError(f"{name} must have shape (N, 2) or (N, 3) pixel coordinates, got {array.shape}")
    if not np.isfinite(array[:, :2]).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return np.rint((array[:, :2].astype(np.float64) - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32)


def overlay_render(photo: np.ndarray, image: torch.Tensor, mask: torch.Tensor, opacity: float = 0.7) -> np.ndarray:
    """Blend a rendered ``image (H, W, 3)`` in [0, 1] over ``photo`` where ``mask (H, W)`` covers it.

    ``out = photo * (1 - opacity * mask) + image * opacity * mask``; returns ``uint8 (H, W, 3)``.
    """
    base = to_uint8(photo).astype(np.float64) / 255.0
    colour = to_uint8(image).astype(np.float64) / 255.0
    alpha = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if colour.shape != base.shape or alpha.shape != base.shape[:2]:
        raise ValueError(f"photo {base.shape}, image {colour.shape} and mask {alpha.shape} sizes differ")
    a = np.clip(alpha.astype(np.float64), 0.0, 1.0)[..., None] * float(opacity)
    return to_uint8(base * (1.0 - a) + colour * a)


def draw_wireframe(photo: np.ndarray, points: torch.Tensor | np.ndarray, faces: torch.Tensor | np.ndarray,
                   pix_to_face: torch.Tensor | np.ndarray | None = None,
                   colour: tuple[int, int, int] = (0, 255, 0), thickness: int = 1) -> np.ndarray:
    """Triangle edges over a copy of ``photo``: ``points (V, 2|3)`` pixels, ``faces (F, 3)``.

    pix_to_face: optional ``(H, W)`` fragments of the same mesh; then only faces seen in
    some pixel are drawn (hidden and back faces are left out).
    """
    out = to_uint8(photo).copy()
    xy = _points("points", points)
    tri = faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else np.asarray(faces)
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tri.shape}")
    if tri.size and (tri.min() < 0 or tri.max() >= len(xy)):
        raise ValueError(f"faces index out of range for {len(xy)} points")
    if pix_to_face is not None:
        seen = pix_to_face.detach().cpu().numpy() if isinstance(pix_to_face, torch.Tensor) else pix_to_face
        tri = tri[np.unique(seen[seen >= 0])]
    polygons = list(xy[tri].reshape(-1, 3, 1, 2))
    cv2.polylines(out, polygons, isClosed=True, color=tuple(int(c) for c in colour), thickness=thickness,
                  lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
    return out


def draw_landmarks(photo: np.ndarray, points: torch.Tensor | np.ndarray, colour: tuple[int, int, int] = (255, 0, 0),
                   radius: int = 2) -> np.ndarray:
    """Filled dots of ``radius`` pixels at ``points (N, 2|3)`` over a copy of ``photo``."""
    out = to_uint8(photo).copy()
    for x, y in _points("points", points):
        cv2.circle(out, (int(x), int(y)), int(radius) << _SUBPIXEL_BITS, tuple(int(c) for c in colour),
                   thickness=-1, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
    return out


def shaded_overlay(photo: np.ndarray | None, vertices: torch.Tensor, faces: torch.Tensor, camera,
                   colour: tuple[float, float, float] = (0.75, 0.75, 0.75), opacity: float = 0.8) -> np.ndarray:
    """A grey, lit mesh ``vertices (V, 3)`` seen by ``camera`` (batch 1) over ``photo`` (or black).

    Lighting: ambient 0.35 plus a light from the upper right front. Returns ``uint8 (H, W, 3)``.
    """
    from .renderer import Renderer, RendererConfig
    from .shading import directional_light

    if vertices.ndim != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {tuple(vertices.shape)}")
    height, width = camera.image_size
    base = np.zeros((height, width, 3), np.uint8) if photo is None else to_uint8(photo)
    if base.shape[:2] != (height, width):
        raise ValueError(f"photo is {base.shape[:2]} but the camera renders {(height, width)}")
    with torch.no_grad():
        v = vertices[None].to(camera.dtype)
        albedo = torch.tensor(colour, dtype=v.dtype, device=v.device).expand(1, v.shape[1], 3)
        light = directional_light(torch.tensor([[0.4, 0.5, 1.0]], dtype=v.dtype, device=v.device), 0.65, 0.35)
        out = Renderer(RendererConfig(backend="torch"))(v, faces, camera, albedo, light)
    return overlay_render(base, out.image[0], out.mask[0], opacity)


@contextmanager
def _atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it on success and is removed on failure."""
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"folder {target.parent} does not exist")
    handle, temp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # the mode a plain open() would give, not mkstemp's 0600
    try:
        yield Path(temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_png(path: str | Path, image: torch.Tensor | np.ndarray) -> Path:
    """Write ``image`` (see :func:`to_uint8`) as an RGB PNG, atomically. Returns the path."""
    from PIL import Image

    pixels = to_uint8(image)
    with _atomic_path(path) as temp:
        Image.fromarray(pixels, mode="RGB").save(temp, format="PNG")
    return Path(path)


class VideoWriter:
    """An MP4 written frame by frame (nothing kept in memory), published atomically on :meth:`close`.

    Frames are ``(H, W, 3)`` (see :func:`to_uint8`), all the same size; H.264 with yuv420p needs even
    sizes, so odd frames are padded by one edge row/column. :meth:`abort` (or an exception inside a
    ``with`` block) removes the partial file. ``ValueError`` for a size change or no frames at all.
    preset: libx264's speed preset (``"veryfast"`` encodes a 640-pixel frame in a few ms; the default,
    ``None``, is x264's ``medium``).
    """

    def __init__(self, path: str | Path, fps: float = 25.0, codec: str = "libx264", crf: int = 18,
                 preset: str | None = None) -> None:
        import av

        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path, self.fps, self.codec, self.crf, self.preset = Path(path), fps, codec, crf, preset
        self._atomic = _atomic_path(path)
        self._temp = self._atomic.__enter__()
        self._container = av.open(str(self._temp), mode="w", format="mp4")
        self._stream = None
        self._size: tuple[int, ...] | None = None
        self.frames = 0
        self.closed = False

    def write(self, frame: torch.Tensor | np.ndarray) -> None:
        """Encode one frame."""
        import av

        pixels = to_uint8(frame)
        if self._size is None:
            self._size = pixels.shape
            self._stream = self._container.add_stream(self.codec, rate=_fraction(self.fps))
            height, width = self._size[:2]
            self._stream.height, self._stream.width = height + height % 2, width + width % 2
            self._stream.pix_fmt = "yuv420p"
            if self.codec == "libx264":
                self._stream.options = {"crf": str(self.crf), **({"preset": self.preset} if self.preset else {})}
        elif pixels.shape != self._size:
            raise ValueError(f"frame size changed from {self._size} to {pixels.shape}")
        padded = np.pad(pixels, ((0, self._size[0] % 2), (0, self._size[1] % 2), (0, 0)), mode="edge")
        self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder and move the file into place."""
        self.closed = True
        try:
            if self._stream is None:
                raise ValueError("no frames to write")
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except BaseException as exc:
            self._container.close()
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        self.closed = True
        self._container.close()
        error = RuntimeError("aborted")
        try:
            self._atomic.__exit__(RuntimeError, error, None)
        except RuntimeError:
            pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | Path, frames: Iterable[torch.Tensor | np.ndarray], fps: float = 25.0,
                codec: str = "libx264", crf: int = 18) -> Path:
    """Write ``frames`` (each ``(H, W, 3)``, see :func:`to_uint8`, all the same size) as an MP4, atomically,
    streaming them through :class:`VideoWriter`. Raises ``ValueError`` for no frames or frames of
    different sizes. Returns the path."""
    with VideoWriter(path, fps, codec, crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
