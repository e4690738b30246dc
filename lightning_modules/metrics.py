"""Image-quality metrics as the QSM reconstruction challenges define them, plus generic error measures.

References:
    NRMSE and HFEN: Langkammer et al., MRM 2018 (QSM reconstruction challenge 2016), HFEN after Ravishankar &
    Bresler, IEEE TMI 2011 (Laplacian of Gaussian, σ = 1.5 voxels). XSIM: QSM challenge 2.0 committee (Bilgic
    et al., MRM 2021; Milovic et al., MRM 2022): SSIM with K1 = 0.01, K2 = 0.001 and a fixed dynamic range
    L = 1 ppm, without rescaling the maps. SSIM: Wang et al., IEEE TIP 2004.
All functions take numpy arrays of equal shape; an optional boolean ``mask`` restricts the evaluation.
Ratios are returned as fractions (multiply by 100 for %).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _as_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=bool) if mask is None else np.asarray(mask).astype(bool)


def nrmse(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Normalised root-mean-square error ``‖x̂ − x‖₂ / ‖x‖₂`` over the mask.

    >>> nrmse(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    0.7071067811865476
    """
    m = _as_mask(mask, np.shape(reference))
    x, y = np.asarray(estimate, np.float64)[m], np.asarray(reference, np.float64)[m]
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


def nmae(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Normalised mean absolute error ``‖x̂ − x‖₁ / ‖x‖₁`` over the mask."""
    m = _as_mask(mask, np.shape(reference))
    x, y = np.asarray(estimate, np.float64)[m], np.asarray(reference, np.float64)[m]
    return float(np.abs(x - y).sum() / np.abs(y).sum())


def hfen(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, *, sigma: float = 1.5) -> float:
    """High-frequency error norm: NRMSE of Laplacian-of-Gaussian filtered maps (σ in voxels)."""
    m = _as_mask(mask, np.shape(reference))
    x = ndimage.gaussian_laplace(np.where(m, estimate, 0.0).astype(np.float64), sigma)
    y = ndimage.gaussian_laplace(np.where(m, reference, 0.0).astype(np.float64), sigma)
    return nrmse(x, y, m)


def ssim(
    estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, *,
    k1: float = 0.01, k2: float = 0.03, data_range: float | None = None, sigma: float = 1.5,
) -> float:
    """Structural similarity (Gaussian window of σ voxels, any dimensionality), averaged over the mask.

    The SSIM map is scikit-image's ``structural_similarity`` as Wang et al. define it (Gaussian weights truncated
    at 3.5 σ, population covariances), of the maps set to zero outside the mask; every side of the maps must be
    at least the window's 2 ⌊3.5 σ + 0.5⌋ + 1 voxels (11 for σ = 1.5).

    Args:
        data_range: L; default the reference's range within the mask.
    """
    from skimage.metrics import structural_similarity

    m = _as_mask(mask, np.shape(reference))
    x = np.where(m, estimate, 0.0).astype(np.float64)
    y = np.where(m, reference, 0.0).astype(np.float64)
    if data_range is None:
        data_range = float(y[m].max() - y[m].min()) or 1.0
    _, s = structural_similarity(x, y, data_range=data_range, gaussian_weights=True, sigma=sigma,
                                 use_sample_covariance=False, K1=k1, K2=k2, full=True)
    return float(s[m].mean())


def xsim(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """XSIM of QSM challenge 2.0: SSIM with K1 = 0.01, K2 = 0.001, L = 1 (ppm), no rescaling."""
    return ssim(estimate, reference, mask, k1=0.01, k2=0.001, data_range=1.0)
