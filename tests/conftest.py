"""Shared fixtures: reproducible seeds and the location of the peer reference data (../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_data_dir() -> Path:
    """``$QSM_SLICER_REFERENCE_DATA`` if set, else ``../shared/data`` beside the repository."""
    env = os.environ.get("QSM_SLICER_REFERENCE_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed() -> None:
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def reference_data() -> Path:
    """The peer reference data folder; skips the test with a clear message when it is absent."""
    path = reference_data_dir()
    if not path.is_dir():
        pytest.skip(f"peer reference data not found at {path} (set QSM_SLICER_REFERENCE_DATA or place ../shared/data)")
    return path
