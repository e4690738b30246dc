"""Calibration of rim+ logits: Platt / temperature scaling, reliability curve and expected calibration error.

Temperature scaling (Guo et al., *On calibration of modern neural networks*, ICML 2017) divides the logit by a
fitted temperature; with a shift in rim+ prevalence between training and use a bias is needed as well, which
makes it Platt scaling (Platt, *Probabilistic outputs for support vector machines*, 1999):
``p = σ(a · z + b)``, ``a = 1/T``, fitted by maximum likelihood on validation lesions (scikit-learn's
logistic regression on the one logit, effectively unregularised). The expected calibration error is
``Σ_b (n_b / N) · |mean(y)_b − mean(p)_b|`` over ``n_bins`` equal-width probability bins (Naeini et al., AAAI
2015); the reliability curve is scikit-learn's ``calibration_curve`` on the same bins.
"""

from __future__ import annotations

import numpy as np


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Scale ``a`` and bias ``b`` of ``σ(a · logit + b)`` maximising the likelihood of ``labels`` (0/1)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=10000).fit(np.asarray(logits, float)[:, None], np.asarray(labels))
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, *, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins of [0, 1] (empty bins skipped).

    >>> round(expected_calibration_error(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.6, 0.4])), 3)
    0.25
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    error = 0.0
    for b in np.unique(bins):
        inside = bins == b
        error += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(error)


def reliability_curve(labels: np.ndarray, probabilities: np.ndarray, *,
                      n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Observed rim+ fraction and mean predicted probability per non-empty bin (scikit-learn's
    ``calibration_curve``, uniform bins)."""
    from sklearn.calibration import calibration_curve

    return calibration_curve(np.asarray(labels), np.asarray(probabilities), n_bins=n_bins, strategy="uniform")
