"""PC2 point caches: one vertex array per frame, read by Blender's Mesh Cache modifier and 3ds Max.

Layout (all little-endian)::

    char[12]  'POINTCACHE2\\0'
    int32     version            (1)
    int32     numPoints          N
    float32   startFrame
    float32   sampleRate         frames between two samples
    int32     numSamples         T
    float32   points[T][N][3]    x, y, z of every vertex, frame after frame

The 32-byte header is followed by nothing but the samples. Vertices must be in the
order of the mesh the cache is applied to; positions are written in the units given
(facecast: the units of the OBJ beside it, metres by default). Blender's modifier (time mode "Frame", the default)
plays sample ``k`` at scene frame ``k + frame_start`` and ignores ``startFrame``.

:func:`export_pc2` builds the whole file in memory; :class:`Pc2Writer` streams frames
to disk with flat memory and publishes the file only when it is closed.
"""

from __future__ import annotations

import os
import struct
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PC2_MAGIC = b"POINTCACHE2\0"
PC2_VERSION = 1
_HEADER = struct.Struct("<12siiffi")
HEADER_SIZE = _HEADER.size  # 32
_NUM_SAMPLES_OFFSET = HEADER_SIZE - 4


@dataclass(frozen=True)
class Pc2Cache:
    """A decoded PC2 file: ``frames`` ``(T, N, 3)`` float32 plus the header fields."""

    frames: np.ndarray
    start_frame: float
    sample_rate: float
    version: int = PC2_VERSION

    @property
    def num_points(self) -> int:
        return int(self.frames.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.frames.shape[0])


def pack_header(num_points: int, num_samples: int, start_frame: float = 0.0,
                sample_rate: float = 1.0) -> bytes:
    """The 32-byte PC2 header. Raises ``ValueError`` for negative counts or a bad rate."""
    if num_points < 0 or num_samples < 0:
        raise ValueError(f"PC2 counts must be >= 0, got {num_points} points, {num_samples} samples")
    if not np.isfinite(start_frame) or not np.isfinite(sample_rate) or sample_rate <= 0:
        raise ValueError(f"PC2 needs a finite start frame and a positive sample rate, "
                         f"got {start_frame}, {sample_rate}")
    return _HEADER.pack(PC2_MAGIC, PC2_VERSION, num_points, start_frame, sample_rate, num_samples)


def _frames_block(frames: np.ndarray, num_points: int | None = None) -> np.ndarray:
    """Check ``(T, N, 3)`` finite positions and return them as little-endian float32."""
    array = np.asarray(frames)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"PC2 frames must have shape (T, N, 3), got {array.shape}")
    if num_points is not None and array.shape[1] != num_points:
        raise ValueError(f"PC2 frames have {array.shape[1]} points, the cache has {num_points}")
    if not np.isfinite(array).all():
        raise ValueError("PC2 frames contain non-finite values")
    return np.ascontiguousarray(array, dtype="<f4")


def export_pc2(frames: np.ndarray, start_frame: float = 0.0, sample_rate: float = 1.0) -> bytes:
    """PC2 file bytes for vertex positions ``frames`` ``(T, N, 3)`` (written as float32)."""
    block = _frames_block(frames)
    return pack_header(block.shape[1], block.shape[0], start_frame, sample_rate) + block.tobytes()


def read_pc2(data: bytes) -> Pc2Cache:
    """Decode PC2 bytes. Raises ``ValueError`` on a bad magic, counts or file size."""
    if len(data) < HEADER_SIZE:
        raise ValueError(f"PC2 data has {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, num_points, start, rate, num_samples = _HEADER.unpack_from(data)
    if magic != PC2_MAGIC:
        raise ValueError(f"not a PC2 file: magic {magic!r}, expected {PC2_MAGIC!r}")
    if num_points < 0 or num_samples < 0:
        raise ValueError(f"PC2 header has negative counts: {num_points} points, {num_samples} samples")
    expected = HEADER_SIZE + 12 * num_points * num_samples
    if len(data) != expected:
        raise ValueError(f"PC2 header promises {num_samples} samples of {num_points} points "
                         f"({expected} bytes), the data has {len(data)} bytes")
    values = np.frombuffer(data, dtype="<f4", offset=HEADER_SIZE)
    frames = values.reshape(num_samples, num_points, 3).astype(np.float32)
    return Pc2Cache(frames=frames, start_frame=float(start), sample_rate=float(rate), version=version)


def _discard(handle, temp_path: str | None) -> None:
    """Close ``handle`` and remove its named temp file (finaliser and abort path)."""
    try:
        handle.close()
    except OSError:  # a full disk cannot take what is still buffered: it is being thrown away anyway
        pass
    if temp_path is not None and os.path.exists(temp_path):
        os.unlink(temp_path)


def _open_hidden(folder: Path) -> tuple[object, str | None]:
    """An unnamed file in ``folder`` (Linux ``O_TMPFILE``) or, elsewhere, a named temp file.

    Returns ``(binary handle, temp path or None)``. An unnamed file vanishes if the
    process dies, so a killed writer leaves nothing behind.
    """
    flag = getattr(os, "O_TMPFILE", 0)
    if flag:
        try:
            fd = os.open(folder, flag | os.O_RDWR, 0o644)
            return os.fdopen(fd, "w+b"), None
        except OSError:
            pass  # file system without O_TMPFILE support: fall back to a named temp file
    fd, name = tempfile.mkstemp(dir=folder, prefix=".pc2-", suffix=".tmp")
    return os.fdopen(fd, "w+b"), name


class Pc2Writer:
    """Stream frames into a PC2 file; the file appears at ``path`` only on :meth:`close`.

    Frames go to a hidden temp file beside ``path``; ``close`` patches ``numSamples``
    in the header, flushes and atomically renames it onto ``path``. :meth:`abort`, an
    exception inside a ``with`` block, garbage collection before ``close`` or a killed
    process leave no file (on Linux not even the temp file).

    Usage::

        with Pc2Writer("take.pc2", num_points=26719) as writer:
            for vertices in frames:          # (N, 3) or (K, N, 3) each
                writer.append(vertices)
    """

    def __init__(self, path: str | os.PathLike, num_points: int, start_frame: float = 0.0,
                 sample_rate: float = 1.0) -> None:
        header = pack_header(num_points, 0, start_frame, sample_rate)
        self.path = Path(path)
        self.num_points = int(num_points)
        self.num_samples = 0
        self._handle, self._temp_path = _open_hidden(self.path.parent)
        self._finalizer = weakref.finalize(self, _discard, self._handle, self._temp_path)
        self._handle.write(header)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def append(self, frames: np.ndarray) -> None:
        """Append one frame ``(N, 3)`` or several ``(K, N, 3)``."""
        if self.closed:
            raise ValueError(f"Pc2Writer for {self.path} is closed")
        array = np.asarray(frames)
        block = _frames_block(array[None] if array.ndim == 2 else array, self.num_points)
        self._handle.write(block.tobytes())
        self.num_samples += block.shape[0]

    def close(self) -> Path:
        """Finish the header, publish the file at ``path`` and return ``path``."""
        if self.closed:
            raise ValueError(f"Pc2Writer for {self.path} is already closed")
        handle = self._handle
        handle.seek(_NUM_SAMPLES_OFFSET)
        handle.write(struct.pack("<i", self.num_samples))
        handle.flush()
        os.fsync(handle.fileno())
        if self._temp_path is None:
            self._temp_path = self._link_hidden(handle)
        os.replace(self._temp_path, self.path)
        self._temp_path = None
        self._finalizer.detach()
        handle.close()
        return self.path

    def _link_hidden(self, handle) -> str:
        """Give the unnamed ``O_TMPFILE`` file a temp name beside ``path``."""
        name = self.path.with_name(f".{self.path.name}.{os.getpid()}.{id(self)}.tmp")
        proc = os.open("/proc/self", os.O_RDONLY)
        try:  # a src_dir_fd makes os.link call linkat(..., AT_SYMLINK_FOLLOW)
            os.link(f"fd/{handle.fileno()}", name, src_dir_fd=proc, follow_symlinks=True)
        finally:
            os.close(proc)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _discard, handle, str(name))
        return str(name)

    def abort(self) -> None:
        """Drop everything written so far; nothing is left on disk."""
        if not self.closed:
            self._finalizer()

    def __enter__(self) -> Pc2Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
