"""Fixtures of the IVIM tests: the OSIPI TF2.4 test data (skipped with a clear message when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def load_osipi(folder: Path, name: str) -> tuple[np.ndarray, list[str], np.ndarray, dict[str, np.ndarray]]:
    """``(b_values, tissue names, signals (n_tissues, n_b), {"D", "f", "Dp", "noise"} truth arrays)``."""
    data = json.loads((folder / name).read_text(encoding="utf-8"))
    b = np.asarray(data.pop("config")["bvalues"], dtype=np.float64)
    names = list(data)
    signals = np.array([data[n]["data"] for n in names], dtype=np.float64)
    truth = {k: np.array([data[n][k] for n in names], dtype=np.float64) for k in ("D", "f", "Dp", "noise")}
    return b, names, signals, truth


@pytest.fixture
def osipi_dir(reference_data: Path) -> Path:
    """``../shared/data/osipi_ivim`` (or ``$QSM_SLICER_REFERENCE_DATA/osipi_ivim``)."""
    path = reference_data / "osipi_ivim"
    if not (path / "generic.json").is_file():
        pytest.skip(f"OSIPI IVIM test data not found at {path} (set QSM_SLICER_REFERENCE_DATA or place ../shared/data)")
    return path
