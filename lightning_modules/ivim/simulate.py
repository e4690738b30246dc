"""Simulated IVIM signals with known truth, as in IVIM-NET's simulations (Barbieri et al. 2020; Kaandorp 2021).

Parameters are drawn uniformly within ranges, S0 = 1, and noise of standard deviation 1/SNR is added: Rician
(magnitude of the signal plus complex Gaussian noise, as in real magnitude images) or Gaussian (IVIM-NET's
simulations, ``rician = False`` in its hyperparameters); the result is divided by the mean signal at the lowest b.
"""

from __future__ import annotations

import numpy as np

from lightning_modules.ivim.signal import PARAMETER_NAMES, model_signal, normalise_signal

#: IVIM-NET example-2 ranges (Kaandorp et al. 2021): D 0.0005–0.003, f 0.05–0.55, D* 0.01–0.1 mm²/s.
PAPER_RANGES = {"D": (0.0005, 0.003), "f": (0.05, 0.55), "Dstar": (0.01, 0.1)}
#: Ranges of our pre-training (wider, covering OSIPI's body tissues).
PRETRAIN_RANGES = {
    "biexp": {"D": (0.0002, 0.0035), "f": (0.0, 0.8), "Dstar": (0.005, 0.15)},
    "triexp": {"D": (0.0002, 0.003), "f1": (0.0, 0.4), "Dstar1": (0.005, 0.05), "f2": (0.0, 0.4),
               "Dstar2": (0.05, 0.4)},
}
#: IVIM-NET paper's b-values (s/mm²).
IVIMNET_B_VALUES = (0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 60.0, 150.0, 300.0, 500.0, 700.0)
#: OSIPI TF2.4 test-suite b-values (s/mm²).
OSIPI_B_VALUES = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 250.0, 350.0, 400.0, 550.0, 700.0,
                  850.0, 1000.0)


def simulate_ivim(
    b_values_s_per_mm2, n_voxels: int, *, model: str = "biexp", ranges: dict[str, tuple[float, float]] | None = None,
    snr: float | tuple[float, float] = 20.0, seed: int = 0, rician: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw parameters and noisy normalised signals.

    Args:
        b_values_s_per_mm2: ``(n_b,)`` b-values.
        n_voxels: number of signals.
        model: ``"biexp"`` or ``"triexp"``.
        ranges: uniform range per parameter name (S0 is 1); default :data:`PAPER_RANGES` (biexp) or
            :data:`PRETRAIN_RANGES` (triexp).
        snr: S0 / noise σ, or a (low, high) range drawn log-uniformly per voxel.
        seed: random seed.
        rician: Rician noise if True, else additive Gaussian noise.

    Returns:
        ``(signals (n_voxels, n_b) divided by S(b_min), true parameters (n_voxels, n_params) with S0 = 1)``.
    """
    rng = np.random.default_rng(seed)
    b = np.asarray(b_values_s_per_mm2, dtype=np.float64)
    ranges = ranges or (PAPER_RANGES if model == "biexp" else PRETRAIN_RANGES[model])
    names = PARAMETER_NAMES[model]
    params = np.ones((n_voxels, len(names)))
    for k, name in enumerate(names[:-1]):
        params[:, k] = rng.uniform(*ranges[name], n_voxels)
    if np.ndim(snr) == 0:
        sigma = np.full((n_voxels, 1), 1.0 / float(snr))
    else:
        sigma = 1.0 / np.exp(rng.uniform(np.log(snr[0]), np.log(snr[1]), (n_voxels, 1)))
    clean = model_signal(model, b, params)
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    if rician:
        noisy = np.hypot(noisy, sigma * rng.standard_normal(clean.shape))
    return normalise_signal(noisy, b)[0], params
