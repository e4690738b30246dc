"""IVIM signal models and signal normalisation (DESIGN.md, "Physics conventions").

Bi-exponential model (Le Bihan et al., Radiology 1988):
``S(b) = S0 · (f · e^(−b D*) + (1 − f) · e^(−b D))``; tri-exponential model (e.g. Wurnig et al., NMR Biomed
2017; Troelstra et al., 2022): ``S0 · (f1 e^(−b D1*) + f2 e^(−b D2*) + (1 − f1 − f2) e^(−b D))``.
b in s/mm², D and D* in mm²/s. Functions work on numpy arrays and torch tensors alike: parameters of shape
``(..., 1)`` broadcast against b-values of shape ``(n_b,)`` to signals of shape ``(..., n_b)``.
"""

from __future__ import annotations

import numpy as np

#: Parameter names (and order) of each model, as written to ``{stem}_{name}.nii.gz``.
PARAMETER_NAMES = {
    "biexp": ("D", "f", "Dstar", "S0"),
    "triexp": ("D", "f1", "Dstar1", "f2", "Dstar2", "S0"),
}


def _exp(x):
    return x.exp() if hasattr(x, "exp") else np.exp(x)


def biexp_signal(b_values_s_per_mm2, *, d_mm2_per_s, f, d_star_mm2_per_s, s0=1.0):
    """Bi-exponential IVIM signal.

    >>> round(float(biexp_signal(np.array([0.0, 100.0]), d_mm2_per_s=1e-3, f=0.1, d_star_mm2_per_s=0.02)[1]), 4)
    0.8279
    """
    b = b_values_s_per_mm2
    return s0 * (f * _exp(-b * d_star_mm2_per_s) + (1 - f) * _exp(-b * d_mm2_per_s))


def triexp_signal(b_values_s_per_mm2, *, d_mm2_per_s, f1, d_star1_mm2_per_s, f2, d_star2_mm2_per_s, s0=1.0):
    """Tri-exponential IVIM signal with two pseudo-diffusion compartments (fractions f1, f2)."""
    b = b_values_s_per_mm2
    return s0 * (
        f1 * _exp(-b * d_star1_mm2_per_s) + f2 * _exp(-b * d_star2_mm2_per_s) + (1 - f1 - f2) * _exp(-b * d_mm2_per_s)
    )


def model_signal(model: str, b_values_s_per_mm2, params):
    """Signal of ``model`` for parameters ``params[..., k]`` in the order of :data:`PARAMETER_NAMES`."""
    p = [params[..., k : k + 1] for k in range(params.shape[-1])]
    if model == "biexp":
        return biexp_signal(b_values_s_per_mm2, d_mm2_per_s=p[0], f=p[1], d_star_mm2_per_s=p[2], s0=p[3])
    if model == "triexp":
        return triexp_signal(b_values_s_per_mm2, d_mm2_per_s=p[0], f1=p[1], d_star1_mm2_per_s=p[2], f2=p[3],
                             d_star2_mm2_per_s=p[4], s0=p[5])
    raise ValueError(f"unknown IVIM model {model!r}; use 'biexp' or 'triexp'")


def s0_estimate(signal: np.ndarray, b_values_s_per_mm2: np.ndarray) -> np.ndarray:
    """Mean signal over every volume acquired at the lowest b-value (any position, repeats averaged).

    Args:
        signal: ``(..., n_b)`` signal intensities.
        b_values_s_per_mm2: ``(n_b,)`` b-values in acquisition order.

    Returns:
        ``(...)`` S(b_min), the normalisation reference (S0 when b_min = 0).
    """
    b = np.asarray(b_values_s_per_mm2, dtype=np.float64)
    return np.asarray(signal, dtype=np.float64)[..., b == b.min()].mean(axis=-1)


def normalise_signal(signal: np.ndarray, b_values_s_per_mm2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Divide by :func:`s0_estimate`; voxels whose reference signal is not positive are flagged invalid.

    Returns:
        ``(normalised signal (..., n_b), reference (...), valid (...) bool)``; invalid voxels are all 0.
    """
    signal = np.asarray(signal, dtype=np.float64)
    ref = s0_estimate(signal, b_values_s_per_mm2)
    valid = ref > 0
    normalised = np.where(valid[..., None], signal / np.where(valid, ref, 1.0)[..., None], 0.0)
    return normalised, ref, valid


def average_repeats(signal: np.ndarray, b_values_s_per_mm2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average volumes acquired at the same b-value and sort by b.

    Returns:
        ``(unique sorted b-values (n_u,), averaged signal (..., n_u))``.

    >>> average_repeats(np.array([[2.0, 1.0, 4.0]]), np.array([100.0, 0.0, 100.0]))[1].tolist()
    [[1.0, 3.0]]
    """
    b = np.asarray(b_values_s_per_mm2, dtype=np.float64)
    unique, inverse = np.unique(b, return_inverse=True)
    signal = np.asarray(signal, dtype=np.float64)
    averaged = np.stack([signal[..., inverse == k].mean(axis=-1) for k in range(unique.size)], axis=-1)
    return unique, averaged


def signal_and_jacobian(model: str, b_values_s_per_mm2, params):
    """Signal and its analytic derivatives with respect to each parameter (torch or numpy).

    Args:
        model: ``"biexp"`` or ``"triexp"``.
        b_values_s_per_mm2: ``(n_b,)``.
        params: ``(n, n_params)`` in the order of :data:`PARAMETER_NAMES`.

    Returns:
        ``(signal (n, n_b), [∂signal/∂param_k (n, n_b) for each k])``.
    """
    b = b_values_s_per_mm2
    p = [params[:, k : k + 1] for k in range(params.shape[1])]
    if model == "biexp":
        d, f, d_star, s0 = p
        e_t, e_p = _exp(-b * d), _exp(-b * d_star)
        shape = f * e_p + (1 - f) * e_t
        return s0 * shape, [-b * s0 * (1 - f) * e_t, s0 * (e_p - e_t), -b * s0 * f * e_p, shape]
    if model == "triexp":
        d, f1, d_star1, f2, d_star2, s0 = p
        e_t, e_1, e_2 = _exp(-b * d), _exp(-b * d_star1), _exp(-b * d_star2)
        shape = f1 * e_1 + f2 * e_2 + (1 - f1 - f2) * e_t
        return s0 * shape, [-b * s0 * (1 - f1 - f2) * e_t, s0 * (e_1 - e_t), -b * s0 * f1 * e_1,
                            s0 * (e_2 - e_t), -b * s0 * f2 * e_2, shape]
    raise ValueError(f"unknown IVIM model {model!r}; use 'biexp' or 'triexp'")
