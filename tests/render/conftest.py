"""Render tests run single-threaded.

The renderer is many small tensor ops; on a machine whose cores are shared with
other jobs, OpenMP worker threads waiting at barriers make such code 10-20x slower
(seen on the 2-core CI box). Correctness does not depend on the thread count, so
these tests pin torch to one thread and restore the setting afterwards.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    yield
