"""Lesion-level detection metrics: ROC and PR curves, (partial) areas, F1 and the F1-optimal threshold.

Partial ROC AUC over FPR < 0.1 follows QSMRim-Net's evaluation (Zhang et al., NeuroImage: Clinical 2022);
it is reported normalised by 0.1 (1 = perfect; a random classifier gives 0.05) and McClish-standardised
(0.5 = random), the convention of ``sklearn.metrics.roc_auc_score(max_fpr=0.1)``.
"""

from __future__ import annotations

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False/true positive rates and thresholds (scores ≥ threshold are positive), from (0, 0) to (1, 1)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    tpr = np.r_[0.0, tp / max(y.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~y).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def partial_roc_auc(labels: np.ndarray, scores: np.ndarray, *, max_fpr: float = 0.1,
                    standardised: bool = False) -> float:
    """ROC area over FPR ∈ [0, max_fpr] divided by ``max_fpr``, or McClish-standardised if ``standardised``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    stop = np.searchsorted(fpr, max_fpr, side="right")
    x = np.r_[fpr[:stop], max_fpr]
    y = np.r_[tpr[:stop], np.interp(max_fpr, fpr, tpr)]
    area = float(np.trapezoid(y, x))
    if not standardised:
        return area / max_fpr
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return 0.5 * (1 + (area - min_area) / (max_area - min_area))


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds, recall increasing from 0."""
    y = np.asarray(labels, dtype=bool)
    fpr, tpr, thresholds = roc_curve(labels, scores)
    tp, fp = tpr * y.sum(), fpr * (~y).sum()
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-12), 1.0)
    return precision, tpr, thresholds


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: Σ (R_k − R_{k−1}) P_k (the step-wise PR area, as ``average_precision_score``)."""
    precision, recall, _ = pr_curve(labels, scores)
    return float(np.sum(np.diff(recall) * precision[1:]))


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
