"""Threshold goals that hold with a stated confidence, not only on the sample they were fitted on.

A goal reads ``sensitivity>=0.95@0.90``: the true sensitivity is at least 0.95 with 90 % confidence,
judged by the one-sided exact (Clopper-Pearson) lower bound on the reviewed positives. Aiming exactly at
0.95 on 56 positives allows two misses and misses the goal on new patients about a quarter of the time;
the bound allows none there (the lower bound with 56 of 56 is 0.1 ** (1 / 56) = 0.960), and with fewer
than 45 positives no threshold meets 0.95 at 90 % at all: the honest answer is then "review more".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.proportion import proportion_confint

GOAL_METRICS = ("sensitivity", "specificity")


@dataclass(frozen=True)
class Goal:
    """``metric >= target``, on the sample (``confidence=None``) or with the given confidence."""

    metric: str
    target: float
    confidence: float | None = None

    @classmethod
    def parse(cls, text: str) -> Goal:
        """``"sensitivity>=0.95"`` or ``"sensitivity>=0.95@0.90"`` (also ``specificity``).

        Raises:
            ValueError: one line saying what is accepted.
        """
        body, _, confidence = text.strip().partition("@")
        metric, _, target = body.partition(">=")
        try:
            goal = cls(metric.strip(), float(target), float(confidence) if confidence else None)
        except ValueError:
            goal = None
        if goal is None or goal.metric not in GOAL_METRICS or not 0.0 < goal.target < 1.0:
            raise ValueError(f"unknown goal {text!r}: use e.g. 'sensitivity>=0.95' or 'sensitivity>=0.95@0.90'")
        if goal.confidence is not None and not 0.5 <= goal.confidence < 1.0:
            raise ValueError(f"goal confidence must lie in [0.5, 1): {text!r}")
        return goal

    def __str__(self) -> str:
        text = f"{self.metric}>={self.target:g}"
        return text if self.confidence is None else f"{text}@{self.confidence:g}"


def lower_bound(successes: int, n: int, confidence: float) -> float:
    """One-sided exact (Clopper-Pearson) lower confidence bound of a proportion ``successes / n``.

    ``0.0`` with no cases or no successes; with every case a success it is ``(1 - confidence) ** (1 / n)``.
    """
    if n <= 0 or successes <= 0:
        return 0.0
    low, _ = proportion_confint(successes, n, alpha=2 * (1 - confidence), method="beta")
    return float(low)


def misses_allowed(n: int, target: float, confidence: float) -> int | None:
    """The most cases of ``n`` that may be missed while the lower bound still meets ``target``.

    ``None`` when even catching all ``n`` is not enough (too few cases).
    """
    allowed = None
    for misses in range(n + 1):
        if lower_bound(n - misses, n, confidence) < target:
            break
        allowed = misses
    return allowed


def cases_needed(target: float, confidence: float, misses: int = 0) -> int:
    """The fewest cases with which catching all but ``misses`` of them meets ``target`` at ``confidence``."""
    n = max(misses + 1, math.ceil(math.log(1 - confidence) / math.log(target)))
    while lower_bound(n - misses, n, confidence) < target:
        n += 1
    return n


def confident_threshold(labels: np.ndarray, scores: np.ndarray, goal: Goal) -> float | None:
    """The highest threshold whose goal metric meets the goal with its confidence on these cases.

    ``p >= threshold`` is PNEUMONIA. For sensitivity the threshold is the score of the positive just
    above the ones allowed to be missed (so those and only those fall below); for specificity, just
    above the negatives allowed to be called positive. ``None`` when too few cases can show the goal.
    """
    assert goal.confidence is not None
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    if goal.metric == "sensitivity":
        positives = np.sort(scores[labels == 1])
        allowed = misses_allowed(len(positives), goal.target, goal.confidence)
        return None if allowed is None else float(positives[allowed])
    negatives = np.sort(scores[labels == 0])[::-1]
    allowed = misses_allowed(len(negatives), goal.target, goal.confidence)
    if allowed is None:
        return None
    return float(np.nextafter(negatives[allowed], np.inf))  # every negative from this one down is NORMAL


def shortfall(labels: np.ndarray, goal: Goal) -> str:
    """Why no threshold can show the goal on these cases, and how many more reviewed cases would."""
    assert goal.confidence is not None
    wanted = 1 if goal.metric == "sensitivity" else 0
    have = int((np.asarray(labels, dtype=int) == wanted).sum())
    need = cases_needed(goal.target, goal.confidence)
    kind = "PNEUMONIA" if wanted else "NORMAL"
    return (
        f"no change: {have} reviewed {kind} case(s) cannot show {goal.metric} >= {goal.target:g} with "
        f"{goal.confidence:.0%} confidence even with none missed; review at least {need - have} more "
        f"({need} in all)"
    )


def paired_improvement_p(better: int, worse: int) -> float:
    """One-sided exact McNemar p-value that a change helps: ``better`` cases right only after, ``worse`` only before.

    Under "no difference" each discordant case is equally likely to go either way, so ``better`` is
    binomial(better + worse, 1/2); ``1.0`` with no discordant case.
    """
    from scipy.stats import binomtest

    if better + worse == 0:
        return 1.0
    return float(binomtest(better, better + worse, 0.5, alternative="greater").pvalue)
