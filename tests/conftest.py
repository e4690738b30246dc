"""Shared fixtures: reproducible seeds, the location of the peer reference data (../shared/data), and a count of
the NIfTI voxel reads of a bundle run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.io import reference_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed_and_one_torch_thread():
    """Reproducible seeds, and one torch thread: small tensors run fastest on one thread, and many threads on
    two shared cores oversubscribe them (tens of times slower)."""
    np.random.seed(0)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def reference_data() -> Path:
    """The peer reference data folder; skips the test with a clear message when it is absent."""
    path = reference_data_dir()
    if not path.is_dir():
        pytest.skip(f"peer reference data not found at {path} (set QSM_SLICER_REFERENCE_DATA or place ../shared/data)")
    return path


@pytest.fixture
def nifti_data_reads(monkeypatch) -> list[str]:
    """The file names whose voxel data nibabel reads during the test, one entry per read (reading a header or an
    affine does not count): a bundle that reads each case once reads each input file once."""
    from nibabel.arrayproxy import ArrayProxy

    reads: list[str] = []
    real = ArrayProxy.__array__

    def counted(self, *args, **kwargs):
        reads.append(Path(str(self.file_like)).name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ArrayProxy, "__array__", counted)
    return reads
