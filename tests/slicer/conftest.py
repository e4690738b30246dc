"""Fixtures of the Slicer-extension tests (import paths are set up by ``slicer_test_support``).

``slicer`` is real Slicer code (``QSMSlicerExtension/headless/headless_slicer.py``: Slicer 5.12.3's Python layer
+ slicer-core + Qt stand-ins); tests that use it skip, saying why, where ``../shared/slicer-5.12.3`` or
slicer-core is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from slicer_test_support import headless_slicer  # also puts QSMSlicerCommon and the <Module>Lib packages on sys.path


@pytest.fixture(scope="session")
def slicer():
    """The ``slicer`` package on real Slicer code (loaded once per session)."""
    reason = headless_slicer.unavailable()
    if reason is not None:
        pytest.skip(reason)
    return headless_slicer.load()


@pytest.fixture
def scene(slicer, tmp_path: Path):
    """An empty scene (Slicer's singletons and colour tables stay), Slicer 5.12, its temp folder in ``tmp_path``,
    no dialog shown yet and none answered."""
    import qt

    slicer.mrmlScene.Clear(0)
    slicer.app.temporaryPath = str(tmp_path)
    slicer.app.majorVersion, slicer.app.minorVersion = 5, 12
    qt.dialogs.clear()
    qt.dialog_answers.clear()
    return slicer.mrmlScene


@pytest.fixture(scope="session")
def qsm_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24³ local field map (ppm) of a χ = 0.1 ppm cube, 1 mm × 1 mm × 1.2 mm voxels, oblique-free affine."""
    import nibabel as nib
    import numpy as np

    from lightning_modules.physics.dipole import forward_field

    chi = np.zeros((24, 24, 24), dtype=np.float32)
    chi[8:16, 8:16, 9:15] = 0.1
    field = forward_field(chi, voxel_size_mm=(1.0, 1.0, 1.2)).numpy()
    affine = np.array([[1.0, 0, 0, -12.0], [0, 1.0, 0, -12.0], [0, 0, 1.2, -14.4], [0, 0, 0, 1]])
    path = tmp_path_factory.mktemp("phantom") / "sphere_field.nii.gz"
    nib.save(nib.Nifti1Image(field.astype(np.float32), affine), str(path))
    return path
