"""Reader statistics: sensitivity and specificity with Wilson intervals, Cohen's and Fleiss' kappa.

Pure functions over label lists, so the review store, the command line and the
tests share one implementation (statsmodels and scikit-learn do the arithmetic).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations

from core.labels import CLASS_NAMES

POSITIVE = "PNEUMONIA"


@dataclass(frozen=True)
class Proportion:
    """``count / total`` with a 95 % Wilson score interval (``nan`` when ``total`` is 0)."""

    count: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        """The point estimate."""
        return self.count / self.total if self.total else math.nan

    def text(self) -> str:
        """``"0.900 (0.596-0.982), 9/10"``; ``"n/a"`` without cases."""
        if not self.total:
            return "n/a"
        return f"{self.value:.3f} ({self.low:.3f}-{self.high:.3f}), {self.count}/{self.total}"


def wilson(count: int, total: int, alpha: float = 0.05) -> Proportion:
    """A proportion with its Wilson score interval (good for small n and proportions near 0 or 1)."""
    if total == 0:
        return Proportion(0, 0, math.nan, math.nan)
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, total, alpha=alpha, method="wilson")
    return Proportion(count, total, float(low), float(high))


@dataclass(frozen=True)
class ReaderFigures:
    """A reader's (or the model's) calls scored against reference labels."""

    n: int
    sensitivity: Proportion
    specificity: Proportion


def reader_figures(calls: list[str], reference: list[str]) -> ReaderFigures:
    """Sensitivity (PNEUMONIA found) and specificity (NORMAL kept) of ``calls`` against ``reference``."""
    if len(calls) != len(reference):
        raise ValueError("calls and reference labels differ in length")
    positives = [c for c, r in zip(calls, reference, strict=True) if r == POSITIVE]
    negatives = [c for c, r in zip(calls, reference, strict=True) if r != POSITIVE]
    return ReaderFigures(
        len(calls),
        wilson(sum(c == POSITIVE for c in positives), len(positives)),
        wilson(sum(c != POSITIVE for c in negatives), len(negatives)),
    )


def cohen_kappa(first: list[str], second: list[str]) -> float:
    """Cohen's kappa of two readers on the same cases; ``nan`` when undefined (fewer than 2 cases, one label only)."""
    if len(first) < 2 or len(set(first) | set(second)) < 2:
        return math.nan
    from sklearn.metrics import cohen_kappa_score

    value = float(cohen_kappa_score(first, second, labels=list(CLASS_NAMES)))
    return value


@dataclass(frozen=True)
class PairAgreement:
    """Two readers on the cases both read."""

    first: str
    second: str
    n: int
    agreement: float
    kappa: float


def pairwise_kappa(calls: dict[str, dict[object, str]]) -> list[PairAgreement]:
    """Cohen's kappa for every pair of readers who called at least one case in common, over those cases.

    Args:
        calls: reader -> case -> label.
    """
    pairs = []
    for first, second in combinations(sorted(calls), 2):
        shared = sorted(set(calls[first]) & set(calls[second]), key=str)
        if not shared:
            continue
        a = [calls[first][case] for case in shared]
        b = [calls[second][case] for case in shared]
        agreement = sum(x == y for x, y in zip(a, b, strict=True)) / len(shared)
        pairs.append(PairAgreement(first, second, len(shared), agreement, cohen_kappa(a, b)))
    return pairs


@dataclass(frozen=True)
class FleissKappa:
    """Fleiss' kappa over the cases read by the same number of readers."""

    kappa: float
    cases: int
    readers_per_case: int


def fleiss(case_calls: list[list[str]]) -> FleissKappa:
    """Fleiss' kappa (statsmodels) over the cases read by the most common number (>= 2) of readers.

    Fleiss' kappa needs the same number of ratings per case; cases with another
    count are left out, and the result says how many were used.
    """
    counts = Counter(len(c) for c in case_calls if len(c) >= 2)
    if not counts:
        return FleissKappa(math.nan, 0, 0)
    readers = max(counts, key=lambda k: (counts[k], k))
    used = [c for c in case_calls if len(c) == readers]
    table = [[sum(call == label for call in case) for label in CLASS_NAMES] for case in used]
    if len(used) < 2 or sum(1 for column in zip(*table, strict=True) if any(column)) < 2:
        return FleissKappa(math.nan, len(used), readers)  # one label only: kappa undefined
    from statsmodels.stats.inter_rater import fleiss_kappa

    return FleissKappa(float(fleiss_kappa(table, method="fleiss")), len(used), readers)
