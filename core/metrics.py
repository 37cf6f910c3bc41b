"""Evaluation metrics on per-image scores, computed with scikit-learn.

Everything works from ``(labels, p_pneumonia)`` so the dashboard can recompute
any figure at a new threshold from a stored report, without the images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from core.labels import CLASS_NAMES


def _arrays(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=int)
    p = np.asarray(scores, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-D and of the same length")
    return y, p


def expected_calibration_error(labels: ArrayLike, scores: ArrayLike, bins: int = 15) -> float:
    """ECE over the predicted class's confidence, in ``bins`` equal-width bins.

    Confidence is ``max(p, 1 - p)`` and correctness is whether the 0.5-threshold
    call matches the label; the bins are equal-width over [0, 1] as is usual.
    """
    y, p = _arrays(labels, scores)
    if y.size == 0:
        return float("nan")
    confidence = np.maximum(p, 1 - p)
    correct = ((p >= 0.5).astype(int) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def confusion_rates(
    labels: ArrayLike, scores: ArrayLike, threshold: float, prevalence: float | None = None
) -> dict[str, Any]:
    """Confusion matrix and rates at one threshold (``p >= threshold`` means PNEUMONIA).

    Args:
        labels: 0 = NORMAL, 1 = PNEUMONIA.
        scores: P(PNEUMONIA) per image.
        threshold: decision threshold.
        prevalence: if given, PPV and NPV are computed for this pneumonia
            prevalence (Bayes' rule) instead of the sample's.

    Returns:
        ``confusion_matrix`` as ``[[TN, FP], [FN, TP]]``, ``sensitivity``,
        ``specificity``, ``ppv``, ``npv``, ``accuracy`` and ``balanced_accuracy``.
    """
    y, p = _arrays(labels, scores)
    predicted = (p >= threshold).astype(int)
    (tn, fp), (fn, tp) = confusion_matrix(y, predicted, labels=[0, 1])
    sensitivity = tp / (tp + fn) if tp + fn else float("nan")
    specificity = tn / (tn + fp) if tn + fp else float("nan")
    if prevalence is None:
        ppv = tp / (tp + fp) if tp + fp else float("nan")
        npv = tn / (tn + fn) if tn + fn else float("nan")
    else:
        true_pos = sensitivity * prevalence
        false_pos = (1 - specificity) * (1 - prevalence)
        true_neg = specificity * (1 - prevalence)
        false_neg = (1 - sensitivity) * prevalence
        ppv = true_pos / (true_pos + false_pos) if true_pos + false_pos else float("nan")
        npv = true_neg / (true_neg + false_neg) if true_neg + false_neg else float("nan")
    return {
        "threshold": float(threshold),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
        "sensitivity": float(sensitivity),
        "specificity": float(specificity),
        "ppv": float(ppv),
        "npv": float(npv),
        "accuracy": float((tp + tn) / len(y)) if len(y) else float("nan"),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)) if tp + fn and tn + fp else float("nan"),
    }


def choose_threshold(labels: ArrayLike, scores: ArrayLike, goal: str = "youden") -> float:
    """Pick a decision threshold on validation scores for a stated goal.

    Args:
        goal: ``"youden"`` maximises sensitivity + specificity;
            ``"sensitivity>=0.95"`` takes the best specificity among thresholds
            whose sensitivity is at least 0.95 (any number in place of 0.95).

    Returns:
        The threshold (a score value; ``p >= threshold`` is PNEUMONIA).
    """
    y, p = _arrays(labels, scores)
    fpr, tpr, thresholds = roc_curve(y, p)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    if goal == "youden":
        best = int(np.argmax(tpr - fpr))
    elif goal.startswith("sensitivity>="):
        target = float(goal.split(">=", 1)[1])
        ok = np.flatnonzero(tpr >= target)
        best = int(ok[np.argmin(fpr[ok])]) if ok.size else int(np.argmax(tpr))
    else:
        raise ValueError(f"unknown threshold goal {goal!r}: use 'youden' or 'sensitivity>=X'")
    return float(thresholds[best])


def bootstrap_intervals(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap 95 % intervals for accuracy, sensitivity, specificity, ROC-AUC and ECE."""
    y, p = _arrays(labels, scores)
    return bootstrap_call_intervals(y, (p >= threshold).astype(int), p, n_resamples, seed)


def bootstrap_call_intervals(
    labels: ArrayLike,
    calls: ArrayLike,
    scores: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Bootstrap 95 % intervals from given calls (e.g. each at its own cross-validation fold's threshold).

    Args:
        labels: true classes (0/1).
        calls: the classes the model called (0/1).
        scores: calibrated P(PNEUMONIA), for ROC-AUC and ECE.
    """
    y, p = _arrays(labels, scores)
    called = np.asarray(calls, dtype=int)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in ("accuracy", "sensitivity", "specificity", "roc_auc", "ece")}
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y), len(y))
        yy, pp, cc = y[idx], p[idx], called[idx]
        if yy.min() == yy.max():
            continue
        samples["accuracy"].append(float((cc == yy).mean()))
        samples["sensitivity"].append(float(cc[yy == 1].mean()))
        samples["specificity"].append(float(1 - cc[yy == 0].mean()))
        samples["roc_auc"].append(float(roc_auc_score(yy, pp)))
        samples["ece"].append(expected_calibration_error(yy, pp))
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items() if v}


def classification_report(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """The full evaluation report used by ``training.evaluate`` and the dashboard.

    Returns:
        ``accuracy``, ``roc_auc``, ``confusion_matrix`` ``[[TN, FP], [FN, TP]]``,
        ``threshold``, per-class ``precision``/``recall``/``f1``/``support``,
        ``sensitivity``, ``specificity``, ``ppv``, ``npv``, ``ece``, ``brier``
        and ``roc_curve`` points (``fpr``, ``tpr``, ``thresholds``).
    """
    y, p = _arrays(labels, scores)
    predicted = (p >= threshold).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=[0, 1], zero_division=0)
    both_classes = len(np.unique(y)) == 2
    report: dict[str, Any] = {
        "n_images": int(len(y)),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, predicted)),
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else None,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(CLASS_NAMES)
        },
        "ece": expected_calibration_error(y, p),
        "brier": float(brier_score_loss(y, p, pos_label=1)) if len(y) else None,
    }
    point = confusion_rates(y, p, threshold)
    report.update({k: point[k] for k in ("confusion_matrix", "sensitivity", "specificity", "ppv", "npv")})
    if both_classes:
        fpr, tpr, thresholds = roc_curve(y, p)
        report["roc_curve"] = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": np.clip(thresholds, 0, 1).tolist(),
        }
    return report


def roc_points(labels: ArrayLike, scores: ArrayLike) -> dict[str, list[float]]:
    """ROC curve points (``fpr``, ``tpr``, ``thresholds`` clipped to [0, 1]) for plotting."""
    y, p = _arrays(labels, scores)
    fpr, tpr, thresholds = roc_curve(y, p)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": np.clip(thresholds, 0, 1).tolist()}


def paired_bootstrap_difference(
    labels: ArrayLike,
    calls_a: ArrayLike,
    scores_a: ArrayLike,
    calls_b: ArrayLike,
    scores_b: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Difference B - A in accuracy and ROC-AUC on the same cases, with a paired bootstrap 95 % interval.

    Each resample draws cases once and scores both models on them, so the
    interval reflects the difference, not each model's own uncertainty.

    Returns:
        ``{"accuracy": {"difference", "ci"}, "roc_auc": {"difference", "ci"}}``; ``ci`` is
        ``None`` when no resample had both classes.
    """
    y, pa = _arrays(labels, scores_a)
    _, pb = _arrays(labels, scores_b)
    ca, cb = np.asarray(calls_a, dtype=int), np.asarray(calls_b, dtype=int)
    both = len(np.unique(y)) == 2
    result: dict[str, dict[str, Any]] = {
        "accuracy": {"difference": float((cb == y).mean() - (ca == y).mean()), "ci": None},
        "roc_auc": {
            "difference": float(roc_auc_score(y, pb) - roc_auc_score(y, pa)) if both else None,
            "ci": None,
        },
    }
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {"accuracy": [], "roc_auc": []}
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y), len(y))
        yy = y[idx]
        samples["accuracy"].append(float((cb[idx] == yy).mean() - (ca[idx] == yy).mean()))
        if yy.min() != yy.max():
            samples["roc_auc"].append(float(roc_auc_score(yy, pb[idx]) - roc_auc_score(yy, pa[idx])))
    for key, values in samples.items():
        if values:
            result[key]["ci"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
    return result
