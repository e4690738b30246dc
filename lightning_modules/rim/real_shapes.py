"""Subjects on real MS lesion shapes: the consensus lesion masks of 27 patients (Lesjak et al. 2017) in MNI space.

Lesjak Ž, Galimzianova A, Koren A, et al. *A novel public MR image dataset of multiple sclerosis patients with
lesion segmentations based on multi-rater consensus.* Neuroinformatics 16:51–63 (2018; online 2017); masks from
``muschellij2/open_ms_data`` (CC-BY), read from ``../shared/data/ms_lesion_masks/`` (or
``$QSM_SLICER_REFERENCE_DATA/ms_lesion_masks``), never copied into the repository.

A subject keeps a patient's lesions exactly as the bundle's contract sees them: the 26-connected components of
the binary mask (confluent lesions stay one lesion). Anatomy is the MNI ICBM152 2009 GM/WM template of the
nilearn wheel resampled onto the masks' 182×218×182 grid; χ, FLAIR, veins, rims and the QSM pipeline (dipole
forward model → field noise → TKD) are those of :mod:`lightning_modules.rim.synth`, with the TKD threshold drawn
per subject (0.15–0.25) and the FLAIR tissue contrasts varied per subject. Rim+ lesions are drawn among the
lesions that have a core inside a 1 mm shell and at least ``RIM_MIN_VOLUME_MM3``: 10–20 % of all lesions, capped
by the number of such lesions (a patient with only small or thin lesions has none).

The patient split is fixed (``PATIENT_SPLIT``, a permutation with seed 25 of the sorted patient numbers, written
down before any training on these subjects): 15 patients for training, 5 for validation (epoch choice,
calibration and the threshold), 7 held out for testing, never used for training or any choice.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from lightning_modules.io import reference_data_dir
from lightning_modules.rim.lesions import label_lesions
from lightning_modules.rim.synth import (
    CHI_GM_PPM,
    CHI_WM_PPM,
    SyntheticSubject,
    _paint_lesion,
    _random_unit,
    _smooth_noise,
    _vein_centreline,
    finish_subject,
)

#: Patients (numbers of ``patientNN``) per role; the permutation rule is in the module docstring.
PATIENT_SPLIT = {
    "train": (2, 3, 5, 9, 10, 11, 13, 14, 15, 18, 23, 25, 27, 28, 30),
    "validation": (12, 17, 20, 22, 24),
    "test": (1, 4, 6, 8, 16, 21, 29),
}
RIM_FRACTION = (0.10, 0.20)
#: Smallest lesion given a rim (it also needs voxels left after one erosion: a core inside the shell).
RIM_MIN_VOLUME_MM3 = 30.0
TKD_THRESHOLD = (0.15, 0.25)
CROP_MARGIN_VOXELS = 4


def mask_path(patient: int, folder: str | os.PathLike | None = None) -> Path:
    """The consensus lesion mask file of ``patient`` (a number)."""
    base = Path(folder) if folder is not None else reference_data_dir() / "ms_lesion_masks"
    return base / f"patient{int(patient):02d}_lesion_mask_mni.nii.gz"


def subject_keys(role: str, seeds: tuple[int, ...] | list[int] = (0,)) -> list[str]:
    """Cache keys ``patientNN_sS`` of the patients of ``role`` (``train``, ``validation``, ``test``) × ``seeds``."""
    return [f"patient{p:02d}_s{s}" for p in PATIENT_SPLIT[role] for s in seeds]


def parse_key(key: str) -> tuple[int, int]:
    """``patientNN_sS`` → (patient, seed)."""
    patient, seed = key.removeprefix("patient").split("_s")
    return int(patient), int(seed)


@functools.lru_cache(maxsize=1)
def tissue_maps_on_mask_grid(reference_mask: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                              tuple[slice, ...]]:
    """GM, WM, brain mask and affine on the grid of ``reference_mask``, cropped to the brain; and the crop."""
    import nibabel as nib
    from nilearn import datasets, image

    target = nib.load(reference_mask)
    maps = []
    for loader in (datasets.load_mni152_gm_template, datasets.load_mni152_wm_template):
        resampled = image.resample_img(loader(resolution=1), target_affine=target.affine, target_shape=target.shape,
                                       interpolation="continuous", force_resample=True, copy_header=True)
        maps.append(np.clip(np.asarray(resampled.get_fdata(), dtype=np.float32), 0, 1))
    gm, wm = maps
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(gm + wm > 0.3, iterations=2))
    index = np.argwhere(brain)
    lo = np.maximum(index.min(0) - CROP_MARGIN_VOXELS, 0)
    hi = np.minimum(index.max(0) + CROP_MARGIN_VOXELS + 1, brain.shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    affine = np.array(target.affine, dtype=np.float64)
    affine[:3, 3] += affine[:3, :3] @ lo
    return gm[crop], wm[crop], brain[crop], affine, crop


def rim_candidates(labels: np.ndarray, n_lesions: int) -> np.ndarray:
    """Labels (1..n) of lesions that can carry a rim: ≥ RIM_MIN_VOLUME_MM3 voxels (1 mm) and a core after one
    erosion (3×3×3)."""
    volumes = ndimage.sum_labels(np.ones(labels.shape), labels, np.arange(1, n_lesions + 1))
    cores = ndimage.sum_labels(ndimage.binary_erosion(labels > 0, np.ones((3, 3, 3))), labels,
                               np.arange(1, n_lesions + 1))
    return np.flatnonzero((volumes >= RIM_MIN_VOLUME_MM3) & (cores > 0)) + 1


def make_real_shape_subject(patient: int, seed: int, *, folder: str | os.PathLike | None = None,
                            field_noise_ppm: tuple[float, float] = (0.002, 0.005)) -> SyntheticSubject:
    """A subject on the real lesions of ``patient`` (deterministic in ``patient`` and ``seed``).

    Args:
        patient: patient number (``patientNN`` of the mask folder).
        seed: random seed of everything drawn (rims, lesion contrasts, veins, noise, TKD threshold, FLAIR).
        folder: the ``ms_lesion_masks`` folder (default: :func:`reference_data_dir`).
        field_noise_ppm: range of the Gaussian noise added to the local field (ppm) before TKD.

    Returns:
        QSM (ppm), FLAIR, lesion labels (26-connected components of the mask, 1..n), rim+ flags per label,
        affine (MNI 1 mm, cropped to the brain) and brain mask; arrays (i, j, k).

    Raises:
        FileNotFoundError: the mask file does not exist.
    """
    import nibabel as nib

    path = mask_path(patient, folder)
    if not path.is_file():
        raise FileNotFoundError(f"lesion mask {str(path)!r} not found; set QSM_SLICER_REFERENCE_DATA to the folder "
                                f"holding ms_lesion_masks/")
    rng = np.random.default_rng([int(patient), int(seed), 25])
    gm, wm, brain, affine, crop = tissue_maps_on_mask_grid(str(path))
    labels = label_lesions((np.asarray(nib.load(path).dataobj) > 0)[crop].astype(np.uint8), binary=True)
    labels[~brain] = 0
    labels = label_lesions((labels > 0).astype(np.uint8), binary=True)
    n_lesions = int(labels.max())
    shape = gm.shape
    csf = np.clip(brain - gm - wm, 0, 1)
    chi = CHI_WM_PPM * wm + CHI_GM_PPM * gm + 0.005 * _smooth_noise(rng, shape, 3.0)
    flair = rng.uniform(0.5, 0.6) * wm + rng.uniform(0.72, 0.9) * gm + rng.uniform(0.08, 0.2) * csf

    candidates = rim_candidates(labels, n_lesions)
    n_rim = min(max(1, int(round(rng.uniform(*RIM_FRACTION) * n_lesions))), len(candidates))
    rim_positive = np.zeros(n_lesions, dtype=bool)
    rim_positive[rng.choice(candidates, n_rim, replace=False) - 1] = True
    # veins: the synthetic slab's density (20–40 per 80 slices) over the whole brain
    n_veins = int(rng.integers(20, 40) * shape[2] / 80)
    centrelines = [_vein_centreline(rng, rng.uniform(0, shape), _random_unit(rng), rng.uniform(20, 60), shape)
                   for _ in range(n_veins)]
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, shape))
        blob = labels[box] == label
        _paint_lesion(rng, chi, flair, box, blob, rim=bool(rim_positive[label - 1]), wm_chi=float(CHI_WM_PPM))
        if rng.random() < 0.3:  # a vein through (central vein sign) or beside the lesion
            centre = np.array([(s.start + s.stop) / 2 for s in box])
            radius = (blob.sum() * 3 / (4 * np.pi)) ** (1 / 3)
            offset = 0.0 if rng.random() < 0.5 else radius + rng.uniform(1.0, 3.0)
            start = centre + offset * _random_unit(rng)
            centrelines.append(_vein_centreline(rng, start, _random_unit(rng), rng.uniform(15, 40), shape))
    return finish_subject(rng, chi.astype(np.float32), flair, labels, rim_positive, affine, brain, centrelines,
                          field_noise_ppm=field_noise_ppm, tkd_threshold=float(rng.uniform(*TKD_THRESHOLD)))
