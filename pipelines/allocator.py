"""The C allocator's settings for long runs: fewer malloc arenas, so freed memory is reused."""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's ``mallopt`` parameter number of M_ARENA_MAX
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc's malloc use at most ``arenas`` heaps; ``True`` when it took the setting.

    ``track`` decodes on one thread, fits on another and encodes the preview on a third; glibc gives
    each thread a heap of its own (up to 8 a core), and a block freed by another thread than the one
    that allocated it goes back to the allocating thread's heap, where it is reused late or never:
    RSS of a 1,000-frame run then crept up by 20-240 MB in some runs. Two arenas (one a core here)
    kept it flat with no loss of speed (benchmarks/README.md). Call it before threads start; a no-op
    where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False
