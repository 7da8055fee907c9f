"""The malloc arena limit: glibc takes it (a wrong parameter number would be refused with 0)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_glibc_takes_the_arena_limit():
    # in a fresh process, so this test run's own allocator is left as it is
    code = ("import threading; from facecast.pipelines.allocator import limit_malloc_arenas; "
            "print(limit_malloc_arenas(2)); t = threading.Thread(target=lambda: bytearray(1 << 20)); "
            "t.start(); t.join()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"

