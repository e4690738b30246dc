"""Radiomic features of each lesion on QSM with pyradiomics, and their standardisation.

QSMRim-Net (Zhang et al., NeuroImage: Clinical 2022) feeds first-order and texture features of the lesion on
QSM to an MLP. We use pyradiomics' ``RadiomicsFeatureExtractor`` with the bundle's YAML parameter file
(original + wavelet images; shape, first-order, GLCM, GLRLM; bin width in ppm). Features are standardised
with the training set's mean and standard deviation, stored in the bundle as JSON.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

#: Voxels of image kept around each lesion's bounding box before extraction (≥ pyradiomics' padDistance).
CROP_MARGIN_VOXELS = 6


def make_extractor(params: str | os.PathLike | dict):
    """A ``radiomics.featureextractor.RadiomicsFeatureExtractor`` from a YAML file or a settings dict.

    A dict is used as keyword settings with every image type and feature class pyradiomics enables by default
    (the configuration of pyradiomics' own baseline CSVs, e.g. ``{"binWidth": 25, "label": 1}``).
    """
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    if isinstance(params, dict):
        return featureextractor.RadiomicsFeatureExtractor(**params)
    return featureextractor.RadiomicsFeatureExtractor(str(params))


def feature_values(result: dict) -> dict[str, float]:
    """The numeric features of a pyradiomics result, without its ``diagnostics_*`` entries."""
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def _sitk_image(array: np.ndarray, spacing_mm: np.ndarray):
    import SimpleITK as sitk  # noqa: N813 (the name SimpleITK documents)

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing([float(s) for s in spacing_mm])
    return image


def lesion_features(extractor, qsm_ppm: np.ndarray, lesion_mask: np.ndarray,
                    voxel_size_mm: np.ndarray) -> dict[str, float]:
    """pyradiomics features of one lesion (boolean mask) on QSM (ppm, (i, j, k)), cropped around the lesion.

    Features pyradiomics cannot compute for a lesion (e.g. texture of a one-voxel lesion) come back as NaN.
    """
    index = np.argwhere(lesion_mask)
    lo = np.maximum(index.min(0) - CROP_MARGIN_VOXELS, 0)
    hi = np.minimum(index.max(0) + CROP_MARGIN_VOXELS + 1, lesion_mask.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    image = _sitk_image(np.asarray(qsm_ppm[crop], dtype=np.float64), voxel_size_mm)
    mask = _sitk_image(np.asarray(lesion_mask[crop], dtype=np.uint8), voxel_size_mm)
    try:
        return feature_values(extractor.execute(image, mask, label=1))
    except (ValueError, RuntimeError, IndexError, ZeroDivisionError):
        return {}


def feature_matrix(rows: list[dict[str, float]], names: list[str]) -> np.ndarray:
    """Rows of feature dicts → (n, len(names)) float32 array in ``names`` order (missing → NaN)."""
    return np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=np.float32).reshape(len(rows),
                                                                                                    len(names))


class FeatureStandardiser:
    """z-scores of radiomic features with stored statistics; NaN (not computable) becomes 0 (the mean).

    Args:
        names: feature names, the column order.
        mean: per-feature mean over the training lesions.
        std: per-feature standard deviation (0 replaced by 1).
        clip: absolute bound of the z-scores (robustness to outlying lesions).
    """

    def __init__(self, names: list[str], mean: np.ndarray, std: np.ndarray, *, clip: float = 8.0) -> None:
        self.names, self.clip = list(names), float(clip)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.where(np.asarray(std, dtype=np.float64) > 0, std, 1.0)

    @classmethod
    def fit(cls, names: list[str], features: np.ndarray) -> FeatureStandardiser:
        """Statistics of (n, n_features) training features (NaN ignored)."""
        x = np.asarray(features, dtype=np.float64)
        with np.errstate(all="ignore"):
            mean = np.nan_to_num(np.nanmean(x, 0))
            std = np.nan_to_num(np.nanstd(x, 0))
        return cls(names, mean, std)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(n, n_features) raw features → float32 z-scores."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0), -self.clip, self.clip).astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        from lightning_modules.io import write_text_atomic

        data = {"names": self.names, "mean": self.mean.tolist(), "std": self.std.tolist(), "clip": self.clip}
        write_text_atomic(json.dumps(data, indent=1), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStandardiser:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["names"], np.array(data["mean"]), np.array(data["std"]), clip=data.get("clip", 8.0))
