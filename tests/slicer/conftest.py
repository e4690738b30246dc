"""Fixtures of the Slicer-extension tests (import paths are set up by ``slicer_test_support``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import slicer_test_support  # noqa: F401  (puts QSMSlicerCommon and the <Module>Lib packages on sys.path)


@pytest.fixture(scope="session")
def qsm_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24³ local field map (ppm) of a χ = 0.1 ppm cube, 1 mm × 1 mm × 1.2 mm voxels, oblique-free affine."""
    import nibabel as nib
    import numpy as np

    from lightning_modules.qsm.dipole import forward_field

    chi = np.zeros((24, 24, 24), dtype=np.float32)
    chi[8:16, 8:16, 9:15] = 0.1
    field = forward_field(chi, voxel_size_mm=(1.0, 1.0, 1.2)).numpy()
    affine = np.array([[1.0, 0, 0, -12.0], [0, 1.0, 0, -12.0], [0, 0, 1.2, -14.4], [0, 0, 0, 1]])
    path = tmp_path_factory.mktemp("phantom") / "sphere_field.nii.gz"
    nib.save(nib.Nifti1Image(field.astype(np.float32), affine), str(path))
    return path
