"""Two model versions side by side: the same cases, each at its own operating point, paired differences."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine

from core.metrics import paired_bootstrap_difference, roc_points
from core.site_adaptation import figures_with_intervals
from service.site import score_reviewed_cases

if TYPE_CHECKING:
    from core.inference import Predictor


def _side(labels: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: int) -> dict[str, Any]:
    calls = (scores >= threshold).astype(int)
    figures = figures_with_intervals(labels, calls, scores, bootstrap)
    figures["roc"] = roc_points(labels, scores) if len(set(labels.tolist())) == 2 else None
    return figures


def _paired(labels: np.ndarray, a: np.ndarray, ta: float, b: np.ndarray, tb: float, bootstrap: int) -> dict[str, Any]:
    return {
        "n": int(len(labels)),
        "a": _side(labels, a, ta, bootstrap),
        "b": _side(labels, b, tb, bootstrap),
        "difference_b_minus_a": paired_bootstrap_difference(
            labels, (a >= ta).astype(int), a, (b >= tb).astype(int), b, bootstrap
        ),
    }


def compare_on_reviewed(engine: Engine, a: Predictor, b: Predictor, bootstrap: int = 1000) -> dict[str, Any]:
    """Both versions on the same held-out reviewed cases (the fixed comparison part), each at its operating point."""
    first = score_reviewed_cases(engine, a, comparison_only=True)
    second = score_reviewed_cases(engine, b, comparison_only=True)
    common = sorted({c.image_sha256 for c in first.cases} & {c.image_sha256 for c in second.cases})
    if not common:
        return {"n": 0}
    index_a = {c.image_sha256: i for i, c in enumerate(first.cases)}
    index_b = {c.image_sha256: i for i, c in enumerate(second.cases)}
    labels = np.array([first.labels[index_a[h]] for h in common])
    pa = a.point.p_pneumonia_from_margin(np.array([first.margins[index_a[h]] for h in common]))
    pb = b.point.p_pneumonia_from_margin(np.array([second.margins[index_b[h]] for h in common]))
    return _paired(labels, pa, a.threshold, pb, b.threshold, bootstrap)


def compare_on_reports(
    a: Predictor, report_a: dict[str, Any], b: Predictor, report_b: dict[str, Any], bootstrap: int = 1000
) -> dict[str, Any]:
    """Both versions on the images their held-out reports share, re-scored at each one's operating point."""
    from core.evaluation import predictions_at, report_operating_point  # torch: only when comparing

    rescored_a = predictions_at(report_a.get("predictions", []), a.point, report_operating_point(report_a))
    rescored_b = predictions_at(report_b.get("predictions", []), b.point, report_operating_point(report_b))
    rows_a = {p["path"]: p for p in rescored_a}
    rows_b = {p["path"]: p for p in rescored_b}
    common = sorted(set(rows_a) & set(rows_b))
    if not common:
        return {"n": 0}
    labels = np.array([rows_a[p]["label"] for p in common])
    pa = np.array([rows_a[p]["p_pneumonia"] for p in common])
    pb = np.array([rows_b[p]["p_pneumonia"] for p in common])
    return _paired(labels, pa, a.threshold, pb, b.threshold, bootstrap)


MIN_COMPARISON_CASES = 30
"""Fewer held-out reviewed cases than this and a comparison cannot support a promotion."""


def promotion_verdict(comparison: dict[str, Any], min_cases: int = MIN_COMPARISON_CASES) -> tuple[bool, str]:
    """Whether promoting B over A is offered, and why, from their paired comparison on held-out reviewed cases."""
    n = int(comparison.get("n", 0))
    if n < min_cases:
        return False, f"not offered: {n} held-out reviewed case(s) to compare on, at least {min_cases} needed"
    worse = []
    for key in ("accuracy", "roc_auc"):
        entry = comparison["difference_b_minus_a"][key]
        if entry["ci"] and entry["ci"][1] < 0:
            worse.append(f"{key} {entry['difference']:+.3f} ({entry['ci'][0]:+.3f} to {entry['ci'][1]:+.3f})")
    if worse:
        return False, "not offered: version B is worse with 95 % confidence on " + ", ".join(worse)
    return True, f"offered: not worse with 95 % confidence on {n} held-out reviewed cases"
