"""Small inputs for the browser tests, one set per page, written as the files a user would upload."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

#: IVIM b-values (s/mm²) and the tissue of the synthetic series: D from 0.6e-3 to 1.4e-3 mm²/s along the first
#: axis (mean 1e-3), f = 0.1, D* = 0.02 mm²/s.
B_VALUES = np.array([0, 10, 20, 50, 100, 200, 400, 800], dtype=float)
IVIM_D, IVIM_F, IVIM_DSTAR = 1.0e-3, 0.1, 0.02
#: the SPIO image's cylinder along y (µg Fe/mm³, mm).
SPIO_LEVEL, SPIO_RADIUS_MM = 6.98, 3.0
#: rim phantom lesion centres (voxel indices; RAS = index − 16 mm); lesion 1 has the paramagnetic rim.
RIM_CENTRES = ((10, 10, 16), (22, 22, 16))


def qsm_field(folder: Path) -> dict[str, Path]:
    """The local field (ppm) of a χ = 0.1 ppm box in a 24³ grid of 1 × 1 × 1.2 mm voxels."""
    from lightning_modules.physics.dipole import forward_field

    chi = np.zeros((24, 24, 24), dtype=np.float32)
    chi[8:16, 8:16, 9:15] = 0.1
    field = forward_field(chi, voxel_size_mm=(1.0, 1.0, 1.2)).numpy().astype(np.float32)
    affine = np.array([[1.0, 0, 0, -12.0], [0, 1.0, 0, -12.0], [0, 0, 1.2, -14.4], [0, 0, 0, 1]])
    path = folder / "box_field.nii.gz"
    nib.save(nib.Nifti1Image(field, affine), str(path))
    return {"input_field": path}


def ivim_series(folder: Path, shape: tuple[int, int, int] = (10, 8, 3)) -> dict[str, Path]:
    """A noiseless bi-exponential DWI series (4-D NIfTI, last axis = b-values) and its ``.bval`` file."""
    d_map = np.linspace(0.6 * IVIM_D, 1.4 * IVIM_D, shape[0])[:, None, None, None]
    signal = 1000 * (IVIM_F * np.exp(-B_VALUES * IVIM_DSTAR) + (1 - IVIM_F) * np.exp(-B_VALUES * d_map))
    data = np.broadcast_to(signal, (*shape, B_VALUES.size)).astype(np.float32)
    dwi, bval = folder / "ivim_dwi.nii.gz", folder / "ivim_dwi.bval"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), np.diag([2.0, 2.0, 4.0, 1.0])), str(dwi))
    bval.write_text(" ".join(f"{b:g}" for b in B_VALUES) + "\n")
    return {"input_dwi": dwi, "b_values_file": bval}


def spio_image(folder: Path) -> dict[str, Path]:
    """A View Line image (128, 128, 1, 2) of a 6.98 µg Fe/mm³ cylinder in an agar disk (the bundle tests' case)."""
    import torch

    from lightning_modules.spio.phantoms import agar_disk, cylinder
    from lightning_modules.spio.viewline import PIXEL_MM, simulate_viewline

    concentration = SPIO_LEVEL * cylinder((0.0, 0.0, 0.0), SPIO_RADIUS_MM, np.array([0.0, 1.0, 0.0])).float()
    image, _ = simulate_viewline(agar_disk(radius_mm=22.0), concentration, snr_db=19.0,
                                 generator=torch.Generator().manual_seed(3))
    data = np.moveaxis(image.numpy(), 0, -1)[:, :, None, :] * 1234.0
    affine = np.diag([PIXEL_MM[0], PIXEL_MM[1], 1.0, 1.0])
    path = folder / "viewline.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return {"input_image": path}


def spio_lumens(folder: Path, *, shape: tuple[int, int] = (128, 128)) -> Path:
    """The cylinder's lumen (label 1: the pixels within 3 mm of its axis) as a labelmap on the image's grid; another
    ``shape`` gives a labelmap on another grid (the tool's one-line error)."""
    from lightning_modules.spio.viewline import PIXEL_MM, pixel_centres_mm

    x = pixel_centres_mm(shape[0], PIXEL_MM[0]).numpy()[:, None]
    z = pixel_centres_mm(shape[1], PIXEL_MM[1]).numpy()[None, :]
    lumen = (x**2 + z**2 <= SPIO_RADIUS_MM**2).astype(np.int16)[:, :, None]
    path = folder / f"lumens_{shape[0]}.nii.gz"
    nib.save(nib.Nifti1Image(lumen, np.diag([PIXEL_MM[0], PIXEL_MM[1], 1.0, 1.0])), str(path))
    return path


def rim_case(folder: Path) -> dict[str, Path]:
    """QSM, FLAIR and a lesion labelmap (32³, 1 mm, centred): lesion 1 with a paramagnetic rim, lesion 2 without."""
    rng = np.random.default_rng(0)
    grid = np.indices((32, 32, 32)).astype(float)
    qsm = rng.normal(0.0, 0.005, (32, 32, 32)).astype(np.float32)
    lesions = np.zeros((32, 32, 32), dtype=np.int16)
    for label, centre in enumerate(RIM_CENTRES, start=1):
        radius = np.linalg.norm(grid - np.reshape(centre, (3, 1, 1, 1)), axis=0)
        lesions[radius <= 4] = label
        if label == 1:
            qsm[(radius > 3) & (radius <= 4)] += 0.06
    affine = np.eye(4)
    affine[:3, 3] = -16.0
    paths = {"input_qsm": folder / "rim_qsm.nii.gz", "input_flair": folder / "rim_flair.nii.gz",
             "input_lesion_mask": folder / "rim_lesions.nii.gz"}
    nib.save(nib.Nifti1Image(qsm, affine), str(paths["input_qsm"]))
    nib.save(nib.Nifti1Image(((lesions > 0) * 2.0 + 1.0).astype(np.float32), affine), str(paths["input_flair"]))
    nib.save(nib.Nifti1Image(lesions, affine), str(paths["input_lesion_mask"]))
    return paths
