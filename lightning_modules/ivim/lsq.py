"""Vectorised least-squares IVIM fits: segmented, and bounded non-linear (Levenberg–Marquardt) seeded by it.

The segmented fit follows the usual two steps (e.g. Gurney-Champion et al., PLoS One 2018; OSIPI TF2.4's
segmented fitters): D from a log-linear fit of the high-b signal, f from the intercept, then D* by a search on a
log grid. The full fit minimises the squared residual of every parameter at once with a projected
Levenberg–Marquardt iteration (Levenberg 1944; Marquardt 1963) run on all voxels simultaneously in torch:
parameters are scaled to [0, 1] within their bounds and each step is clipped back into the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lightning_modules.ivim.signal import PARAMETER_NAMES, normalise_signal, signal_and_jacobian

#: Fit bounds (lower, upper) per parameter, in the order of PARAMETER_NAMES; signals normalised by S(b_min).
#: ``body`` is OSIPI TF2.4's test-suite box (S0 [0.7, 1.3], f [0, 1], D* [0.005, 0.2], D [0, 0.005]);
#: ``brain`` is narrower, for perfusion fractions and D of brain tissue.
BOUNDS = {
    "biexp": {
        "body": ((0.0, 0.005), (0.0, 1.0), (0.005, 0.2), (0.7, 1.3)),
        "brain": ((0.0, 0.003), (0.0, 0.3), (0.003, 0.1), (0.7, 1.3)),
    },
    "triexp": {
        "body": ((0.0, 0.005), (0.0, 1.0), (0.005, 0.05), (0.0, 1.0), (0.05, 0.5), (0.7, 1.3)),
        "brain": ((0.0, 0.003), (0.0, 0.3), (0.003, 0.03), (0.0, 0.3), (0.03, 0.3), (0.7, 1.3)),
    },
}

_CHUNK_VOXELS = 65536


def bounds_array(model: str, preset: str) -> np.ndarray:
    """Bounds of ``model`` / ``preset`` as a ``(n_params, 2)`` array.

    Raises:
        ValueError: unknown model or preset.
    """
    if model not in BOUNDS:
        raise ValueError(f"unknown IVIM model {model!r}; use one of {', '.join(BOUNDS)}")
    if preset not in BOUNDS[model]:
        raise ValueError(f"unknown bounds preset {preset!r}; use one of {', '.join(BOUNDS[model])}")
    return np.asarray(BOUNDS[model][preset], dtype=np.float64)


@dataclass
class IvimFit:
    """Parameter maps of a fit: ``params[..., k]`` in the order of ``PARAMETER_NAMES[model]`` (S0 in signal units)."""

    model: str
    params: np.ndarray

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """``{name: map}``, e.g. ``{"D": ..., "f": ..., "Dstar": ..., "S0": ...}``."""
        return {name: self.params[..., k] for k, name in enumerate(PARAMETER_NAMES[self.model])}


def segmented_fit(
    signal: np.ndarray, b_values_s_per_mm2: np.ndarray, *, bounds: np.ndarray, b_threshold_s_per_mm2: float = 200.0,
    n_grid: int = 64,
) -> np.ndarray:
    """Segmented bi-exponential fit of normalised signals (all voxels at once).

    Args:
        signal: ``(n_voxels, n_b)`` signals divided by S(b_min).
        b_values_s_per_mm2: ``(n_b,)``.
        bounds: ``(4, 2)`` bi-exponential bounds.
        b_threshold_s_per_mm2: b-values at or above it fit D (the upper half of the b-values if fewer than 2).
        n_grid: points of the log-spaced D* search.

    Returns:
        ``(n_voxels, 4)`` parameters (D, f, D*, S0) with S0 = 1.
    """
    b = np.asarray(b_values_s_per_mm2, dtype=np.float64)
    high = b >= b_threshold_s_per_mm2
    if np.unique(b[high]).size < 2:
        high = b >= np.median(b)
    log_s = np.log(np.clip(signal[:, high], 1e-6, None))
    design = np.stack([np.ones(high.sum()), -b[high]], axis=1)
    coef = np.linalg.lstsq(design, log_s.T, rcond=None)[0]
    d = np.clip(coef[1], *bounds[0])
    tissue = np.exp(coef[0])
    f = np.clip(1.0 - tissue, *bounds[1])
    grid = np.geomspace(*bounds[2], n_grid)
    d_star = np.empty_like(d)
    for start in range(0, signal.shape[0], _CHUNK_VOXELS // 8):
        sl = slice(start, start + _CHUNK_VOXELS // 8)
        model = (f[sl, None, None] * np.exp(-b[None, None, :] * grid[None, :, None])
                 + (1 - f[sl, None, None]) * np.exp(-b[None, None, :] * d[sl, None, None]))
        cost = ((model - signal[sl, None, :]) ** 2).sum(axis=-1)
        d_star[sl] = grid[cost.argmin(axis=1)]
    return np.stack([d, f, d_star, np.ones_like(d)], axis=1)


def levenberg_marquardt(
    signal: torch.Tensor, b_values_s_per_mm2: torch.Tensor, start: torch.Tensor, *, model: str, bounds: torch.Tensor,
    iterations: int = 40,
) -> torch.Tensor:
    """Bounded least squares by projected Levenberg–Marquardt on every voxel at once.

    Args:
        signal: ``(n_voxels, n_b)`` normalised signals.
        b_values_s_per_mm2: ``(n_b,)``.
        start: ``(n_voxels, n_params)`` starting parameters (inside the bounds).
        model: ``"biexp"`` or ``"triexp"``.
        bounds: ``(n_params, 2)``.
        iterations: LM iterations.

    Returns:
        ``(n_voxels, n_params)`` fitted parameters.
    """
    lo, width = bounds[:, 0], bounds[:, 1] - bounds[:, 0]

    def residual_and_jacobian(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model_s, derivatives = signal_and_jacobian(model, b_values_s_per_mm2, lo + u * width)
        return model_s - signal, torch.stack(derivatives, dim=2) * width

    u = ((start - lo) / width).clamp(0, 1)
    eye = torch.eye(u.shape[1], dtype=u.dtype, device=u.device)
    r, jac = residual_and_jacobian(u)
    cost = (r * r).sum(1)
    lam = torch.full_like(cost, 1e-2)
    for _ in range(iterations):
        jtj = torch.einsum("nbi,nbj->nij", jac, jac)
        grad = torch.einsum("nbi,nb->ni", jac, r)
        step = _solve_spd(jtj + lam[:, None, None] * (jtj * eye + 1e-9 * eye), -grad)
        u_new = (u + step).clamp(0, 1)
        r_new, jac_new = residual_and_jacobian(u_new)
        cost_new = (r_new * r_new).sum(1)
        better = cost_new < cost
        u = torch.where(better[:, None], u_new, u)
        r = torch.where(better[:, None], r_new, r)
        jac = torch.where(better[:, None, None], jac_new, jac)
        cost = torch.where(better, cost_new, cost)
        lam = torch.where(better, lam * 0.3, lam * 10.0).clamp(1e-9, 1e9)
    return lo + u * width


def _solve_spd(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve many small symmetric positive-definite systems ``(n, p, p) x = (n, p)`` by an unrolled Cholesky.

    Loops over the p (≤ 6) rows and vectorises over n, far faster on CPU than one LAPACK call per voxel.
    """
    p = matrix.shape[-1]
    low = [[None] * p for _ in range(p)]
    for i in range(p):
        for j in range(i + 1):
            acc = matrix[:, i, j] - sum((low[i][k] * low[j][k] for k in range(j)), torch.zeros_like(matrix[:, i, j]))
            low[i][j] = acc.clamp_min(1e-30).sqrt() if i == j else acc / low[j][j]
    y = []
    for i in range(p):
        y.append((rhs[:, i] - sum((low[i][k] * y[k] for k in range(i)), torch.zeros_like(rhs[:, i]))) / low[i][i])
    x = [None] * p
    for i in reversed(range(p)):
        x[i] = (y[i] - sum((low[k][i] * x[k] for k in range(i + 1, p)), torch.zeros_like(rhs[:, i]))) / low[i][i]
    return torch.stack(x, dim=1)


def _seed(model: str, segmented: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    if model == "biexp":
        return segmented
    d, f, _, s0 = segmented.T
    mid1, mid2 = np.sqrt(bounds[2, 0] * bounds[2, 1]), np.sqrt(bounds[4, 0] * bounds[4, 1])
    return np.stack([d, f / 2, np.full_like(d, mid1), f / 2, np.full_like(d, mid2), s0], axis=1)


class IvimLsq:
    """Least-squares IVIM model for one acquisition (dipy-style: ``IvimLsq(b_values).fit(signal)``).

    Args:
        b_values_s_per_mm2: b-values in acquisition order (any order, repeats allowed).
        model: ``"biexp"`` or ``"triexp"``.
        bounds: preset name of :data:`BOUNDS` (``"body"`` or ``"brain"``).
        segmented_only: stop after the segmented fit (bi-exponential only).
        b_threshold_s_per_mm2: lowest b-value of the segmented D fit.
        iterations: Levenberg–Marquardt iterations of the full fit.
        device: torch device of the full fit.

    >>> b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800.0])
    >>> s = np.exp(-b * 1e-3) * 0.9 + 0.1 * np.exp(-b * 0.05)
    >>> {k: round(float(v), 4) for k, v in IvimLsq(b).fit(s).maps.items()}
    {'D': 0.001, 'f': 0.1, 'Dstar': 0.05, 'S0': 1.0}
    """

    def __init__(
        self, b_values_s_per_mm2, *, model: str = "biexp", bounds: str = "body", segmented_only: bool = False,
        b_threshold_s_per_mm2: float = 200.0, iterations: int = 40, device: str | torch.device = "cpu",
    ) -> None:
        self.b_values = np.asarray(b_values_s_per_mm2, dtype=np.float64).ravel()
        if np.any(self.b_values < 0):
            raise ValueError("b-values must not be negative")
        self.model = model
        self.bounds = bounds_array(model, bounds)
        self.segmented_only = segmented_only
        self.b_threshold = float(b_threshold_s_per_mm2)
        self.iterations = int(iterations)
        self.device = torch.device(device)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float64, device=self.device)

    def fit(self, signal: np.ndarray) -> IvimFit:
        """Fit every voxel of ``signal`` (shape ``(..., n_b)``, any intensity scale).

        Voxels whose lowest-b signal is not positive get 0 in every map; S0 is returned in signal units.
        """
        signal = np.asarray(signal, dtype=np.float64)
        if signal.shape[-1] != self.b_values.size:
            raise ValueError(f"signal has {signal.shape[-1]} volumes but there are {self.b_values.size} b-values")
        normalised, ref, valid = normalise_signal(signal.reshape(-1, signal.shape[-1]), self.b_values)
        params = np.zeros((normalised.shape[0], len(PARAMETER_NAMES[self.model])))
        params[valid] = self.fit_normalised(normalised[valid])
        params[:, -1] *= ref.ravel()
        params[~valid] = 0.0
        return IvimFit(self.model, params.reshape(*signal.shape[:-1], -1))

    def fit_normalised(self, normalised: np.ndarray) -> np.ndarray:
        """Parameters ``(n, n_params)`` of signals ``(n, n_b)`` already divided by S(b_min) (each with a positive
        reference; S0 comes back relative to it)."""
        normalised = np.asarray(normalised, dtype=np.float64)
        bi_bounds = bounds_array("biexp", "body") if self.model == "triexp" else self.bounds
        params = np.zeros((normalised.shape[0], len(PARAMETER_NAMES[self.model])))
        for start in range(0, normalised.shape[0], _CHUNK_VOXELS):
            chunk = slice(start, start + _CHUNK_VOXELS)
            seg = segmented_fit(normalised[chunk], self.b_values, bounds=bi_bounds,
                                b_threshold_s_per_mm2=self.b_threshold)
            seed = np.clip(_seed(self.model, seg, self.bounds), self.bounds[:, 0], self.bounds[:, 1])
            if self.segmented_only and self.model == "biexp":
                params[chunk] = seed
                continue
            fitted = levenberg_marquardt(self._tensor(normalised[chunk]), self._tensor(self.b_values),
                                         self._tensor(seed), model=self.model, bounds=self._tensor(self.bounds),
                                         iterations=self.iterations)
            params[chunk] = fitted.cpu().numpy()
        return params
