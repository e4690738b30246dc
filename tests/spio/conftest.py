"""Shared fixtures of the SPIO tests: simulated View Line images (seeds and threads: tests/conftest.py)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.phantoms import agar_disk, cylinder
from lightning_modules.spio.viewline import PIXEL_MM, simulate_viewline


@pytest.fixture
def cylinder_image(tmp_path):
    """A View Line NIfTI (128, 128, 1, 2) of a 6.98 µg Fe/mm³ cylinder in agar, SNR 19 dB, oblique affine."""
    concentration = 6.98 * cylinder((0.0, 0.0, 0.0), 3.0, np.array([0.0, 1.0, 0.0])).float()
    image, truth = simulate_viewline(agar_disk(radius_mm=22.0), concentration, snr_db=19.0,
                                     generator=torch.Generator().manual_seed(3))
    affine = np.array([[0.0, 0.0, 1.0, -1.0],
                       [PIXEL_MM[0], 0.0, 0.0, -25.0],
                       [0.0, PIXEL_MM[1], 0.0, -25.0],
                       [0.0, 0.0, 0.0, 1.0]])
    data = np.moveaxis(image.numpy(), 0, -1)[:, :, None, :] * 1234.0
    path = tmp_path / "viewline_cyl.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    assert data.shape == (*acq.VIEWLINE_MATRIX, 1, 2)
    return path, affine, truth.numpy()
