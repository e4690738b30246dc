"""Lesion-level detection metrics: ROC and PR curves, (partial) areas, F1 and the F1-optimal threshold.

Curves and areas are scikit-learn's (``roc_curve``, ``roc_auc_score``, ``precision_recall_curve``,
``average_precision_score``; imported where used, so that importing the package stays fast). An area is undefined
when the labels hold one class only: scikit-learn then warns and returns NaN (older releases raise ``ValueError``).
Partial ROC AUC over FPR < 0.1 follows QSMRim-Net's evaluation (Zhang et al., NeuroImage: Clinical 2022);
it is reported normalised by 0.1 (1 = perfect; a random classifier gives 0.05) and McClish-standardised
(0.5 = random), the convention of ``sklearn.metrics.roc_auc_score(max_fpr=0.1)``.
"""

from __future__ import annotations

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False/true positive rates and thresholds (scores ≥ threshold are positive), from (0, 0) to (1, 1), one point
    per distinct score (``sklearn.metrics.roc_curve`` keeping collinear points)."""
    from sklearn import metrics

    return metrics.roc_curve(labels, scores, drop_intermediate=False)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half)."""
    from sklearn import metrics

    return float(metrics.roc_auc_score(labels, scores))


def partial_roc_auc(labels: np.ndarray, scores: np.ndarray, *, max_fpr: float = 0.1,
                    standardised: bool = False) -> float:
    """ROC area over FPR ∈ [0, max_fpr] divided by ``max_fpr``, or McClish-standardised if ``standardised``.

    scikit-learn gives the McClish value ``0.5 (1 + (A − A_min) / (A_max − A_min))`` with ``A_min = max_fpr² / 2``
    (the chance diagonal) and ``A_max = max_fpr``; the normalised area ``A / max_fpr`` is read back from it.
    """
    from sklearn import metrics

    mcclish = float(metrics.roc_auc_score(labels, scores, max_fpr=max_fpr))
    if standardised:
        return mcclish
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return (min_area + (2 * mcclish - 1) * (max_area - min_area)) / max_fpr


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds, recall increasing from 0 (precision 1 there, threshold ∞): the points of
    ``sklearn.metrics.precision_recall_curve`` in the order of :func:`roc_curve`."""
    from sklearn import metrics

    precision, recall, thresholds = metrics.precision_recall_curve(labels, scores)
    return precision[::-1], recall[::-1], np.r_[np.inf, thresholds[::-1]]


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: Σ (R_k − R_{k−1}) P_k, the step-wise PR area (``sklearn.metrics.average_precision_score``)."""
    from sklearn import metrics

    return float(metrics.average_precision_score(labels, scores))


def f1_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """F1 score of ``scores ≥ threshold``."""
    y = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    tp = np.sum(predicted & y)
    return float(2 * tp / max(predicted.sum() + y.sum(), 1))


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold maximising F1 (midway to the next lower score) and that F1."""
    s = np.unique(np.asarray(scores, dtype=np.float64))[::-1]
    best = (0.5, -1.0)
    for i, t in enumerate(s):
        f1 = f1_at(labels, scores, t)
        if f1 > best[1]:
            below = s[i + 1] if i + 1 < len(s) else t
            best = (float(0.5 * (t + below)) if below < t else float(t), f1)
    return best


def detection_metrics(labels: np.ndarray, scores: np.ndarray, *, threshold: float) -> dict[str, float]:
    """ROC AUC, partial AUC (FPR < 0.1; normalised and standardised), PR AUC and F1 at ``threshold``."""
    return {"roc_auc": roc_auc(labels, scores), "pauc_fpr0.1": partial_roc_auc(labels, scores),
            "pauc_fpr0.1_mcclish": partial_roc_auc(labels, scores, standardised=True),
            "pr_auc": pr_auc(labels, scores), "f1": f1_at(labels, scores, threshold)}
