"""Native log lines: MediaPipe's C++ code (absl logging, TF Lite) writes INFO and WARNING
lines straight to file descriptor 2 when its graphs start, such as::

    INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    W0000 00:00:1714668459.87 6300 inference_feedback_manager.cc:114] Feedback manager ...

``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` do not reach them (MediaPipe 0.10 logs
through absl, whose threshold Python cannot set), so :func:`quiet_native_logs` filters
file descriptor 2 itself around the calls that start graphs.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NATIVE_LOG_LINE = re.compile(
    rb"[IW]\d{4} [\d:.]+ +\d+ [^\s\]]+:\d+\] "          # absl / glog INFO and WARNING lines
    rb"|INFO: "                                          # TF Lite's INFO lines
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called")


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Drop native INFO/WARNING log lines (:data:`NATIVE_LOG_LINE`) written to fd 2 in the block.

    fd 2 points at a temporary file meanwhile; when the block ends (normally or by an
    exception) fd 2 is restored and every other line written there meanwhile (native
    errors, Python output of any thread) is written back to it, late but not lost.
    Python exceptions raised in the block reach stderr as usual. Where fd 2 cannot be
    duplicated or no temporary file can be made, the block runs unfiltered.
    """
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        capture = tempfile.TemporaryFile()
    except OSError:
        os.close(saved)
        yield
        return
    with capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _write_fd2(b"".join(line for line in capture if not NATIVE_LOG_LINE.match(line)))


def _flush_stderr() -> None:
    if sys.stderr is not None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):   # closed or broken stream: nothing to keep in order
            pass


def _write_fd2(data: bytes) -> None:
    while data:
        try:
            written = os.write(2, data)
        except OSError:                  # stderr closed: the lines cannot be shown anyway
            return
        data = data[written:]
