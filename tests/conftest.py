"""Shared fixtures: the seed, the thread count, a private embedding cache, and the bundled digits INR zoo."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the Zoo explorer's embedding cache (core.embedding_cache) of this test process: never the user's own
os.environ["WSE_CACHE_DIR"] = _CACHE = tempfile.mkdtemp(prefix="wse-test-cache-")
atexit.register(shutil.rmtree, _CACHE, True)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one worker per core: one torch thread each (and in the CLIs they start), so workers do not
    # oversubscribe the cores and wait on each other's threads.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits_inr_zoo():
    """The bundled 8 × 8 digits INR zoo (1,797 SIRENs 2→16→16→1), opened once per test session."""
    from core.zoo import Zoo

    return Zoo.open(ROOT / "assets" / "zoos" / "digits-inr")
