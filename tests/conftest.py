"""Shared fixtures: the real ICT model from ../shared/assets (or $FACECAST_ASSETS)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SUPPORT = Path(__file__).resolve().parent / "support"  # helpers shared by tests (gltf_tools, batch_tools)
sys.path.insert(0, str(SUPPORT))
os.environ.setdefault("FACECAST_ASSETS", str(SHARED / "assets"))
os.environ.setdefault("FACECAST_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the repository (assets and media, never committed)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture(scope="session")
def ict_data():
    from facecast.recon.model.topology import load_ict_data

    return load_ict_data()


@pytest.fixture(scope="session")
def model(ict_data):
    """Full ICT model, float32, CPU."""
    from facecast.recon.model.morphable import MorphableModel

    return MorphableModel(ict_data)


@pytest.fixture(scope="session")
def model64(ict_data):
    """Full ICT model, float64, CPU (for gradcheck-style tests)."""
    import torch

    from facecast.recon.model.morphable import MorphableModel

    return MorphableModel(ict_data, dtype=torch.float64)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small networks and renders are fastest so on 2 shared cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
