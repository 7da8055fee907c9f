"""MediaPipe's C++ log lines are dropped from stderr; everything else written there is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facecast.recon.landmarks.native_logs import quiet_native_logs


def test_native_info_and_warning_lines_are_dropped_and_the_rest_kept(capfd):
    with quiet_native_logs():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"W0000 00:00:1714668459.875897  381002 inference_feedback_manager.cc:114] Feedback\n"
                    b"I0000 00:00:1714668459.877641  381112 gl_context.cc:357] GL version: 3.2\n"
                    b"E0000 00:00:1714668459.877641  381112 graph.cc:12] a real error\n")
        print("python output", file=sys.stderr)
        os.write(1, b"stdout untouched\n")
    captured = capfd.readouterr()
    # (pytest's capfd sends sys.stderr around fd 2, so the order of the two lines is not checked)
    assert sorted(captured.err.splitlines()) == [
        "E0000 00:00:1714668459.877641  381112 graph.cc:12] a real error", "python output"]
    assert captured.out == "stdout untouched\n"


def test_stderr_is_restored_when_the_block_raises(capfd):
    with pytest.raises(RuntimeError, match="boom"), quiet_native_logs():
        os.write(2, b"kept before the error\n")
        raise RuntimeError("boom")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "kept before the error\nafter\n"


def test_mediapipe_detector_leaves_stderr_empty():
    code = ("import numpy as np; from facecast.recon.landmarks.mediapipe_mesh import MediaPipeDetector; "
            "d = MediaPipeDetector(); print(d.detect(np.zeros((64, 64, 3), np.uint8))); "
            "print(list(d.track([np.zeros((64, 64, 3), np.uint8)])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "[[]]"] and out.stderr == ""
