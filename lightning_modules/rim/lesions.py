"""Lesions of a mask: connected components, volumes, RAS centroids and fixed-size patches around each lesion.

QSMRim-Net (Zhang et al., NeuroImage: Clinical 2022) classifies each lesion from a patch centred on it. Here a
patch is a cube of ``patch_size_mm`` resampled (trilinear, zero outside the image) to ``patch_voxels`` per
axis, with axes along the image's voxel axes, so it covers the same physical extent at any resolution.
Arrays are (i, j, k) in voxel order; centroids are world (RAS) millimetres through the NIfTI affine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Patch edge in mm and in voxels (1 mm sampling): 32 mm holds the largest synthetic lesions (1000 mm³) and a margin.
PATCH_SIZE_MM = 32.0
PATCH_VOXELS = 24


@dataclass(frozen=True)
class Lesion:
    """One lesion: its label in the label image, voxel count, volume (mm³), centroid in voxels and in RAS mm."""

    label: int
    n_voxels: int
    volume_mm3: float
    centroid_voxel: np.ndarray
    centroid_ras_mm: np.ndarray


def label_lesions(mask: np.ndarray, *, binary: bool | None = None) -> np.ndarray:
    """Integer lesion labels of a lesion mask (i, j, k).

    Args:
        mask: binary mask (0/1, any dtype) or integer labels (0 = background).
        binary: treat as binary (26-connected components become lesions); ``None``: binary iff the values
            are only 0 and 1.

    Returns:
        int32 label image: one label per 26-connected component (binary) or the given labels (labelled).

    Raises:
        ValueError: non-integer or negative values.
    """
    values = np.asarray(mask)
    if np.any(values < 0) or not np.all(np.equal(np.mod(values, 1), 0)):
        raise ValueError("lesion mask values must be non-negative integers (0 background, 1 or labels per lesion)")
    if binary is None:
        binary = bool(np.all(np.isin(np.unique(values), (0, 1))))
    if binary:
        labels, _ = ndimage.label(values > 0, structure=np.ones((3, 3, 3), dtype=bool))
        return labels.astype(np.int32)
    return values.astype(np.int32)


def describe_lesions(labels: np.ndarray, affine: np.ndarray) -> list[Lesion]:
    """Voxel count, volume (mm³) and centroid (voxel and RAS mm) of every non-zero label, in label order.

    >>> labels = np.zeros((5, 5, 5), dtype=np.int32); labels[1:3, 1, 1] = 4
    >>> lesion = describe_lesions(labels, np.diag([2.0, 1.0, 1.0, 1.0]))[0]
    >>> lesion.label, lesion.n_voxels, lesion.volume_mm3, lesion.centroid_ras_mm.tolist()
    (4, 2, 4.0, [3.0, 1.0, 1.0])
    """
    affine = np.asarray(affine, dtype=np.float64)
    voxel_volume_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    ids = [int(v) for v in np.unique(labels) if v != 0]
    if not ids:
        return []
    counts = ndimage.sum_labels(np.ones(labels.shape), labels, ids)
    centroids = np.atleast_2d(np.asarray(ndimage.center_of_mass(np.ones(labels.shape), labels, ids)))
    lesions = []
    for label, count, centroid in zip(ids, counts, centroids):
        ras = affine[:3, :3] @ centroid + affine[:3, 3]
        lesions.append(Lesion(label, int(count), float(count) * voxel_volume_mm3, centroid, ras))
    return lesions


def patch_coordinates(centroid_voxel: np.ndarray, voxel_size_mm: np.ndarray, *,
                      patch_size_mm: float = PATCH_SIZE_MM, patch_voxels: int = PATCH_VOXELS) -> np.ndarray:
    """Voxel coordinates (3, n, n, n) of a cube of ``patch_size_mm`` sampled at ``patch_voxels`` points per axis."""
    offsets_mm = (np.arange(patch_voxels) - (patch_voxels - 1) / 2) * (patch_size_mm / patch_voxels)
    axes = [centroid_voxel[a] + offsets_mm / voxel_size_mm[a] for a in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def extract_patch(volume: np.ndarray, centroid_voxel: np.ndarray, voxel_size_mm: np.ndarray, *, order: int = 1,
                  patch_size_mm: float = PATCH_SIZE_MM, patch_voxels: int = PATCH_VOXELS) -> np.ndarray:
    """A (n, n, n) patch of ``volume`` centred on ``centroid_voxel``; zero where it leaves the image.

    Args:
        volume: image (i, j, k).
        centroid_voxel: patch centre in (fractional) voxel coordinates.
        voxel_size_mm: the image's voxel sizes along its axes.
        order: interpolation order (1 trilinear for images, 0 nearest for masks).
        patch_size_mm: patch edge, mm.
        patch_voxels: samples per axis.
    """
    coords = patch_coordinates(np.asarray(centroid_voxel, float), np.asarray(voxel_size_mm, float),
                               patch_size_mm=patch_size_mm, patch_voxels=patch_voxels)
    return ndimage.map_coordinates(np.asarray(volume, dtype=np.float32), coords, order=order, mode="constant",
                                   cval=0.0, prefilter=False)


def normalise_flair(flair: np.ndarray, brain: np.ndarray | None = None) -> np.ndarray:
    """FLAIR divided by its median over the brain (non-zero voxels if ``brain`` is None): any scale in, ~1 out."""
    region = flair[brain] if brain is not None else flair[flair > 0]
    scale = float(np.median(region)) if region.size else 1.0
    return flair / (scale if scale > 0 else 1.0)


def lesion_patches(qsm_ppm: np.ndarray, flair_normalised: np.ndarray, labels: np.ndarray, lesions: list[Lesion],
                   voxel_size_mm: np.ndarray) -> np.ndarray:
    """Patches (n_lesions, 3, n, n, n): QSM (ppm), normalised FLAIR and this lesion's mask (0/1)."""
    out = np.zeros((len(lesions), 3, PATCH_VOXELS, PATCH_VOXELS, PATCH_VOXELS), dtype=np.float32)
    for i, lesion in enumerate(lesions):
        out[i, 0] = extract_patch(qsm_ppm, lesion.centroid_voxel, voxel_size_mm)
        out[i, 1] = extract_patch(flair_normalised, lesion.centroid_voxel, voxel_size_mm)
        own = (labels == lesion.label).astype(np.float32)
        out[i, 2] = extract_patch(own, lesion.centroid_voxel, voxel_size_mm, order=0)
    return out


def edge_minus_core_ppm(qsm_ppm: np.ndarray, lesion_mask: np.ndarray, *, band_voxels: int = 2) -> float:
    """The FIELD_NOTES ten-line rule: mean QSM in a band across the lesion edge minus the core mean (ppm).

    The band is the lesion dilated by one voxel minus the lesion eroded by ``band_voxels - 1`` voxels
    (two voxels straddling the edge); the core is the rest of the lesion (the lesion itself if it is all edge).
    """
    inside = lesion_mask.astype(bool)
    grown = ndimage.binary_dilation(inside)
    eroded = ndimage.binary_erosion(inside, iterations=band_voxels - 1) if band_voxels > 1 else inside
    band = grown & ~eroded
    core = eroded if eroded.any() else inside
    return float(qsm_ppm[band].mean() - qsm_ppm[core].mean())
