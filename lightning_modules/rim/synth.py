"""Synthetic MS subjects for rim-lesion detection: brain-like QSM (from a forward-modelled field) and FLAIR.

Anatomy comes from the MNI ICBM152 2009 GM/WM probability maps shipped in the ``nilearn`` wheel (1 mm).
Susceptibility χ (ppm): WM −0.03, GM +0.02, CSF 0, smooth texture, veins (+0.25…0.45 ppm, Gaussian profile),
and lesions of irregular shapes (3–1000 mm³). Rim+ lesions (DESIGN.md; Zhang et al., NeuroImage: Clinical 2022)
carry a paramagnetic shell of 1–2 mm and +0.02…+0.08 ppm relative to their core at the lesion edge, covering
2/3 to all of the edge (the consensus criterion); rim− lesions are iso-, hypo- or uniformly hyperintense, some
with a short paramagnetic arc (< 1/3 of the edge) as a confounder. Veins run through or beside some lesions.
The QSM is what a user would have: χ → dipole field (:func:`lightning_modules.physics.dipole.forward_field`) → noise
→ TKD (:func:`lightning_modules.physics.dipole.tkd_inversion`), with its streaking and underestimation.
All arrays (i, j, k).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from lightning_modules.physics.dipole import dipole_kernel, forward_field, tkd_inversion

CHI_WM_PPM, CHI_GM_PPM = -0.03, 0.02
RIM_CONTRAST_PPM = (0.02, 0.08)
RIM_THICKNESS_MM = (1.0, 2.0)
LESION_VOLUME_MM3 = (3.0, 1000.0)
#: Rim+ lesions need a core inside their 1–2 mm shell.
RIM_LESION_VOLUME_MM3 = (40.0, 1000.0)
RIM_FRACTION = (0.05, 0.15)
#: Axial slab (voxels of the 1 mm MNI grid) kept for a subject: the periventricular and deep white matter.
SLAB_Z = (50, 130)


@dataclass
class SyntheticSubject:
    """One subject: QSM (ppm), FLAIR (arbitrary scale), lesion labels 1..n, rim+ flag per label, affine."""

    qsm_ppm: np.ndarray
    flair: np.ndarray
    labels: np.ndarray
    rim_positive: np.ndarray
    affine: np.ndarray
    brain: np.ndarray


@functools.lru_cache(maxsize=1)
def mni_tissue_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GM and WM probabilities, brain mask and affine of the 1 mm MNI template, cropped to the brain's box."""
    from nilearn import datasets

    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).get_fdata(), dtype=np.float32)
    wm_img = datasets.load_mni152_wm_template(resolution=1)
    wm = np.asarray(wm_img.get_fdata(), dtype=np.float32)
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(gm + wm > 0.3, iterations=2))
    gm, wm, brain = (a[..., SLAB_Z[0]:SLAB_Z[1]] for a in (gm, wm, brain))
    index = np.argwhere(brain)
    lo, hi = index.min(0) - 2, index.max(0) + 3
    box = tuple(slice(max(a, 0), b) for a, b in zip(lo[:2], hi[:2])) + (slice(None),)
    affine = np.array(wm_img.affine, dtype=np.float64)
    affine[:3, 3] += affine[:3, :3] @ np.array([box[0].start, box[1].start, SLAB_Z[0]])
    return gm[box], wm[box], brain[box], affine


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_voxels: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_voxels)
    return field / (field.std() + 1e-12)


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _vein_centreline(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, length_mm: float,
                     shape: tuple[int, ...]) -> np.ndarray:
    """Integer voxel points of a gently curving line through ``start`` (both ways), inside ``shape``."""
    points = []
    for sign in (1.0, -1.0):
        p, d = start.astype(float), sign * direction
        for _ in range(int(length_mm / 2 / 0.5)):
            d = d + 0.05 * rng.standard_normal(3)
            d /= np.linalg.norm(d)
            p = p + 0.5 * d
            points.append(p.copy())
    pts = np.round(np.array(points)).astype(int)
    keep = np.all((pts >= 0) & (pts < np.array(shape)), axis=1)
    return pts[keep]


def _lesion_blob(rng: np.random.Generator, volume_mm3: float) -> np.ndarray:
    """Irregular, 26-connected boolean blob of about ``volume_mm3`` voxels (1 mm) in a small box."""
    radius = (3 * volume_mm3 / (4 * np.pi)) ** (1 / 3)
    half = int(np.ceil(1.8 * radius)) + 2
    grid = np.indices((2 * half + 1,) * 3).reshape(3, -1).T - half
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = radius * rng.uniform(0.7, 1.4, 3)
    axes *= radius / np.prod(axes) ** (1 / 3)
    r = np.linalg.norm((grid @ rotation) / axes, axis=1).reshape((2 * half + 1,) * 3)
    bumps = _smooth_noise(rng, r.shape, max(radius / 2, 1.0)) * 0.25
    level = 1.0
    for _ in range(8):  # adjust the level so that the blob has about the wanted volume
        blob = r + bumps <= level
        level *= (volume_mm3 / max(blob.sum(), 1)) ** (1 / 3)
    blob = r + bumps <= level
    if not blob.any():
        blob[half, half, half] = True
    labels, n = ndimage.label(blob, structure=np.ones((3, 3, 3)))
    if n > 1:
        blob = labels == 1 + np.argmax(ndimage.sum_labels(blob, labels, range(1, n + 1)))
    return blob


def _edge_cap(rng: np.random.Generator, shell: np.ndarray, centre: np.ndarray, coverage: float) -> np.ndarray:
    """The part of ``shell`` (points (m, 3)) seen from ``centre`` within a cap covering ``coverage`` of it."""
    directions = shell - centre
    directions /= np.linalg.norm(directions, axis=1, keepdims=True) + 1e-9
    dots = directions @ _random_unit(rng)
    return dots >= np.quantile(dots, 1.0 - coverage)


def make_subject(seed: int, *, n_lesions: tuple[int, int] = (20, 40),
                 field_noise_ppm: tuple[float, float] = (0.002, 0.005),
                 rim_fraction: tuple[float, float] = RIM_FRACTION) -> SyntheticSubject:
    """A synthetic subject (deterministic in ``seed``).

    Args:
        seed: random seed.
        n_lesions: range of the number of lesions.
        field_noise_ppm: range of the Gaussian noise added to the local field (ppm) before TKD.
        rim_fraction: range of the fraction of rim+ lesions (at least one rim+ lesion per subject).
    """
    rng = np.random.default_rng(seed)
    gm, wm, brain, affine = mni_tissue_maps()
    if rng.random() < 0.5:  # left-right mirror for variety (the affine stays: a mirrored brain is still a brain)
        gm, wm, brain = gm[::-1].copy(), wm[::-1].copy(), brain[::-1].copy()
    shape = gm.shape
    csf = np.clip(brain - gm - wm, 0, 1)
    chi = CHI_WM_PPM * wm + CHI_GM_PPM * gm + 0.005 * _smooth_noise(rng, shape, 3.0)
    flair = 0.55 * wm + 0.8 * gm + 0.15 * csf
    centrelines = [_vein_centreline(rng, rng.uniform(0, shape), _random_unit(rng), rng.uniform(20, 60), shape)
                   for _ in range(int(rng.integers(20, 40)))]

    labels = np.zeros(shape, dtype=np.int32)
    occupied = np.zeros(shape, dtype=bool)
    candidates = np.argwhere((wm > 0.9) & brain)
    n_total = int(rng.integers(*n_lesions, endpoint=True))
    n_rim = max(1, int(round(rng.uniform(*rim_fraction) * n_total)))
    rim_flags = np.zeros(n_total, dtype=bool)
    rim_flags[rng.choice(n_total, n_rim, replace=False)] = True
    rim_positive = []
    for flag in rim_flags:
        lo, hi = RIM_LESION_VOLUME_MM3 if flag else LESION_VOLUME_MM3
        blob = _lesion_blob(rng, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
        for _ in range(30):
            centre = candidates[rng.integers(len(candidates))]
            corner = centre - np.array(blob.shape) // 2
            if np.any(corner < 1) or np.any(corner + blob.shape >= np.array(shape) - 1):
                continue
            box = tuple(slice(c, c + s) for c, s in zip(corner, blob.shape))
            if occupied[box][blob].any():
                continue
            label = len(rim_positive) + 1
            labels[box][blob] = label
            grown = ndimage.binary_dilation(blob, iterations=2)
            occupied[box] |= grown
            _paint_lesion(rng, chi, flair, box, blob, rim=bool(flag), wm_chi=float(CHI_WM_PPM))
            rim_positive.append(bool(flag))
            radius = (blob.sum() * 3 / (4 * np.pi)) ** (1 / 3)
            if rng.random() < 0.3:  # a vein through (central vein sign) or beside the lesion
                offset = 0.0 if rng.random() < 0.5 else radius + rng.uniform(1.0, 3.0)
                start = centre + offset * _random_unit(rng)
                centrelines.append(_vein_centreline(rng, start, _random_unit(rng), rng.uniform(15, 40), shape))
            break

    return finish_subject(rng, chi, flair, labels, np.array(rim_positive, dtype=bool), affine, brain, centrelines,
                          field_noise_ppm=field_noise_ppm)


def finish_subject(rng: np.random.Generator, chi: np.ndarray, flair: np.ndarray, labels: np.ndarray,
                   rim_positive: np.ndarray, affine: np.ndarray, brain: np.ndarray, centrelines: list[np.ndarray], *,
                   field_noise_ppm: tuple[float, float], tkd_threshold: float = 0.19) -> SyntheticSubject:
    """Veins along ``centrelines`` added to χ, then the QSM a user would have (forward field, noise, TKD with
    ``tkd_threshold``) and the FLAIR image (bias field, noise, scale): the steps every simulator here shares."""
    veins = np.ones(chi.shape, dtype=bool)
    for line in centrelines:
        veins[tuple(line.T)] = False
    distance = ndimage.distance_transform_edt(veins)
    chi = chi + rng.uniform(0.25, 0.45) * np.exp(-(distance**2) / (2 * rng.uniform(0.5, 0.8) ** 2))
    chi *= brain
    qsm = _tkd_qsm(rng, chi.astype(np.float32), brain, rng.uniform(*field_noise_ppm), tkd_threshold)
    flair = _flair_image(rng, flair, brain)
    return SyntheticSubject(qsm, flair, labels, rim_positive, affine, brain)


def _paint_lesion(rng: np.random.Generator, chi: np.ndarray, flair: np.ndarray, box: tuple[slice, ...],
                  blob: np.ndarray, *, rim: bool, wm_chi: float) -> None:
    """Lesion susceptibility (core and rim) and FLAIR hyperintensity, written into ``chi`` and ``flair``."""
    depth_mm = ndimage.distance_transform_edt(np.pad(blob, 1))[1:-1, 1:-1, 1:-1]
    points = np.argwhere(blob).astype(float)
    centre = points.mean(0)
    kind = rng.choice(["iso", "hypo", "hyper"], p=[0.45, 0.2, 0.35]) if not rim else rng.choice(["iso", "hypo"])
    core_ppm = wm_chi + {"iso": rng.uniform(-0.01, 0.01), "hypo": rng.uniform(-0.03, -0.01),
                         "hyper": rng.uniform(0.01, 0.05)}[kind]
    lesion_chi = np.full(blob.shape, core_ppm, dtype=np.float32)
    shell = blob & (depth_mm <= rng.uniform(*RIM_THICKNESS_MM))
    if rim:
        coverage = rng.uniform(2 / 3, 1.0)
    elif rng.random() < 0.25:  # confounder: a short arc, below the consensus criterion of 2/3 of the edge
        coverage = rng.uniform(0.1, 0.3)
    else:
        coverage = 0.0
    if coverage > 0 and shell.sum() > 3:
        shell_points = np.argwhere(shell)
        cap = _edge_cap(rng, shell_points.astype(float), centre, coverage)
        contrast = rng.uniform(*RIM_CONTRAST_PPM) if rim else rng.uniform(0.02, 0.06)
        lesion_chi[tuple(shell_points[cap].T)] += contrast
    region_chi = chi[box]
    region_chi[blob] = lesion_chi[blob]
    soft = ndimage.gaussian_filter(blob.astype(np.float32), 0.7)
    region_flair = flair[box]
    region_flair += soft * rng.uniform(0.5, 0.9)


def _tkd_qsm(rng: np.random.Generator, chi_ppm: np.ndarray, brain: np.ndarray, noise_ppm: float,
             tkd_threshold: float = 0.19) -> np.ndarray:
    """χ → local field (zero-padded forward model) → Gaussian noise → TKD; ppm, 0 outside the brain."""
    mask = torch.as_tensor(brain, dtype=torch.float32)
    field = forward_field(torch.as_tensor(chi_ppm), (1.0, 1.0, 1.0)) * mask
    field = field + noise_ppm * torch.as_tensor(rng.standard_normal(chi_ppm.shape), dtype=torch.float32) * mask
    kernel = dipole_kernel(chi_ppm.shape, (1.0, 1.0, 1.0))
    with torch.no_grad():
        qsm = tkd_inversion(field, kernel, threshold=tkd_threshold, mask=mask)
    return qsm.numpy()


def _flair_image(rng: np.random.Generator, flair: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Bias field, noise and an arbitrary scanner scale on top of the tissue contrast."""
    bias = 1.0 + 0.1 * _smooth_noise(rng, flair.shape, 20.0)
    noisy = flair * bias + 0.03 * rng.standard_normal(flair.shape)
    return (np.clip(noisy, 0, None) * brain * rng.uniform(100, 1000)).astype(np.float32)
