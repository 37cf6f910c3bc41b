"""Multi-reader multi-case (MRMC) analysis: Obuchowski-Rockette with Hillis' degrees of freedom.

Each reader rates each case under each modality (unaided, aided...). A figure of merit
``theta[i, j]`` (modality ``i``, reader ``j``) is computed per reader: the empirical
(trapezoidal, Mann-Whitney) AUC, or sensitivity / specificity at a rating cut. Its
error covariances come from the jackknife over cases (or DeLong's structural
components for the AUC), and the Obuchowski-Rockette model splits them into

- ``var_error``: the mean variance of one reader's figure;
- ``cov1``: same reader, different modalities; ``cov2``: same modality, different
  readers; ``cov3``: different reader and modality.

Three analyses of the modality difference (Hillis 2007; Hillis, Berbaum & Metz 2008):
random readers and cases (RRRC: F with Hillis' denominator degrees of freedom), fixed
readers (FRRC: chi-square), fixed cases (RRFC: F on the reader-by-modality mean square).
``cov2 - cov3`` is floored at zero, as the literature does. Validated against the
published analyses of Van Dyke et al. (1993) and Zanca et al. (2009, five
modalities) in ``tests/core/test_mrmc.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats

ENDPOINTS = ("auc", "sensitivity", "specificity")


@dataclass(frozen=True)
class Ratings:
    """Ratings ``[modality, reader, case]`` of one set of cases, with the cases' truth (1 = abnormal)."""

    modalities: list[str]
    readers: list[str]
    cases: list[str]
    truth: np.ndarray
    values: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Ratings:
        """From long-format rows ``reader, case, modality, truth, rating`` (every reader x case x modality once).

        Modalities keep the order they first appear in (differences read first - second); readers and
        cases are sorted (numbers as numbers).

        Raises:
            ValueError: a missing rating, a case with two truths, or one class only.
        """
        modalities = list(dict.fromkeys(str(r["modality"]) for r in rows))  # in the order they first appear
        readers = sorted({str(r["reader"]) for r in rows}, key=_natural)
        cases = sorted({str(r["case"]) for r in rows}, key=_natural)
        index = {(str(r["modality"]), str(r["reader"]), str(r["case"])): float(r["rating"]) for r in rows}
        truths: dict[str, set[int]] = {}
        for r in rows:
            truths.setdefault(str(r["case"]), set()).add(int(r["truth"]))
        if any(len(t) != 1 for t in truths.values()):
            raise ValueError("a case has two different truth values")
        missing = len(modalities) * len(readers) * len(cases) - len(index)
        if missing:
            raise ValueError(f"{missing} reading(s) missing: every reader must rate every case in every modality")
        values = np.array([[[index[(m, r, c)] for c in cases] for r in readers] for m in modalities])
        truth = np.array([truths[c].pop() for c in cases], dtype=int)
        if truth.min() == truth.max():
            raise ValueError("the cases need both truth values (0 and 1)")
        return cls(modalities, readers, cases, truth, values)


def _natural(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def empirical_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Trapezoidal AUC: P(positive rated above negative) + half the ties (Mann-Whitney)."""
    difference = positive[:, None] - negative[None, :]
    return float(((difference > 0) + 0.5 * (difference == 0)).mean())


def _figure(values: np.ndarray, truth: np.ndarray, endpoint: str, cut: float) -> float:
    if endpoint == "auc":
        return empirical_auc(values[truth == 1], values[truth == 0])
    if endpoint == "sensitivity":
        return float((values[truth == 1] >= cut).mean())
    return float((values[truth == 0] < cut).mean())


def figures(ratings: Ratings, endpoint: str = "auc", cut: float = 3.0) -> np.ndarray:
    """``theta[modality, reader]``."""
    t, r, _ = ratings.values.shape
    return np.array([[_figure(ratings.values[i, j], ratings.truth, endpoint, cut) for j in range(r)] for i in range(t)])


def jackknife_covariance(ratings: Ratings, endpoint: str = "auc", cut: float = 3.0) -> np.ndarray:
    """Covariance of the ``t * r`` figures by the jackknife over cases: ``(t*r, t*r)``, modality-major.

    Sensitivity is jackknifed over abnormal cases only and specificity over normal ones (the others
    do not move it).
    """
    keep = {"auc": np.ones_like(ratings.truth, dtype=bool), "sensitivity": ratings.truth == 1}
    pool = np.flatnonzero(keep.get(endpoint, ratings.truth == 0))
    t, r, _ = ratings.values.shape
    pseudo = np.empty((len(pool), t * r))
    for row, case in enumerate(pool):
        mask = np.ones(len(ratings.truth), dtype=bool)
        mask[case] = False
        reduced = Ratings(ratings.modalities, ratings.readers, [], ratings.truth[mask], ratings.values[:, :, mask])
        pseudo[row] = figures(reduced, endpoint, cut).ravel()
    n = len(pool)
    centred = pseudo - pseudo.mean(axis=0)
    return (n - 1) / n * centred.T @ centred


def delong_covariance(ratings: Ratings) -> np.ndarray:
    """Covariance of the ``t * r`` empirical AUCs from DeLong's structural components (DeLong et al. 1988)."""
    positive, negative = ratings.truth == 1, ratings.truth == 0
    t, r, _ = ratings.values.shape
    flat = ratings.values.reshape(t * r, -1)
    v10, v01 = [], []
    for series in flat:
        difference = series[positive][:, None] - series[negative][None, :]
        kernel = (difference > 0) + 0.5 * (difference == 0)
        v10.append(kernel.mean(axis=1))
        v01.append(kernel.mean(axis=0))
    return np.cov(np.array(v10)) / positive.sum() + np.cov(np.array(v01)) / negative.sum()


@dataclass(frozen=True)
class VarianceComponents:
    """The Obuchowski-Rockette variance and covariance components."""

    var_r: float
    var_tr: float
    var_error: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_r: float
    ms_tr: float

    def as_dict(self) -> dict[str, float]:
        """JSON-ready."""
        return {k: float(v) for k, v in self.__dict__.items()}


def variance_components(theta: np.ndarray, covariance: np.ndarray) -> VarianceComponents:
    """Mean squares of ``theta`` and the averaged error covariances, as Obuchowski and Rockette define them."""
    t, r = theta.shape
    modality_means, reader_means, grand = theta.mean(axis=1), theta.mean(axis=0), theta.mean()
    ms_t = r * np.sum((modality_means - grand) ** 2) / (t - 1)
    ms_r = t * np.sum((reader_means - grand) ** 2) / (r - 1)
    interaction = theta - modality_means[:, None] - reader_means[None, :] + grand
    ms_tr = np.sum(interaction**2) / ((t - 1) * (r - 1))
    modality = np.repeat(np.arange(t), r)
    reader = np.tile(np.arange(r), t)
    same_m, same_r = modality[:, None] == modality[None, :], reader[:, None] == reader[None, :]
    var_error = float(np.mean(np.diag(covariance)))
    cov1 = float(covariance[~same_m & same_r].mean())
    cov2 = float(covariance[same_m & ~same_r].mean())
    cov3 = float(covariance[~same_m & ~same_r].mean())
    var_tr = ms_tr - var_error + cov1 + cov2 - cov3
    var_r = (ms_r - var_tr - var_error - (t - 1) * cov1 + cov2 + (t - 1) * cov3) / t
    return VarianceComponents(var_r, var_tr, var_error, cov1, cov2, cov3, ms_t, ms_r, ms_tr)


@dataclass(frozen=True)
class Comparison:
    """One modality difference under one analysis."""

    modalities: tuple[str, str]
    method: str
    difference: float
    se: float
    ci: tuple[float, float]
    statistic: float
    """F (RRRC, RRFC) or chi-square (FRRC) for this pair."""
    df: float
    """Denominator degrees of freedom (RRRC, RRFC); 1 for FRRC's chi-square."""
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; ``F`` holds the statistic whatever its distribution."""
        return {
            "modalities": list(self.modalities),
            "method": self.method,
            "difference": self.difference,
            "se": self.se,
            "ci": list(self.ci),
            "F": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
        }


@dataclass
class MrmcResult:
    """The whole analysis: figures per modality and reader, variance components, every comparison."""

    endpoint: str
    theta: np.ndarray
    components: VarianceComponents
    comparisons: list[Comparison] = field(default_factory=list)
    overall: dict[str, dict[str, float]] = field(default_factory=dict)
    """The omnibus test of equal modalities per analysis (``F``, ``df``, ``p_value``)."""

    def as_dict(self, ratings: Ratings) -> dict[str, Any]:
        """JSON-ready: ``modalities`` (mean and per reader), ``comparisons`` (RRRC first), components."""
        return {
            "endpoint": self.endpoint,
            "modalities": {
                m: {
                    self.endpoint: float(self.theta[i].mean()),
                    "readers": dict(zip(ratings.readers, map(float, self.theta[i]), strict=True)),
                }
                for i, m in enumerate(ratings.modalities)
            },
            "comparisons": [c.as_dict() for c in self.comparisons],
            "overall": self.overall,
            "variance_components": self.components.as_dict(),
            "n_readers": len(ratings.readers),
            "n_cases": len(ratings.cases),
            "n_abnormal": int(ratings.truth.sum()),
        }


def analyse(ratings: Ratings, endpoint: str = "auc", cut: float = 3.0, covariance: str = "jackknife") -> MrmcResult:
    """Obuchowski-Rockette analysis of every pair of modalities: RRRC (Hillis df), FRRC and RRFC.

    Raises:
        ValueError: fewer than two modalities or readers, an unknown endpoint, DeLong for a binary endpoint,
            or figures with no variance to test against (every reader rating alike).
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}: use one of {', '.join(ENDPOINTS)}")
    t, r, _ = ratings.values.shape
    if t < 2 or r < 2:
        raise ValueError(f"need at least two modalities and two readers; have {t} and {r}")
    if covariance == "delong" and endpoint != "auc":
        raise ValueError("DeLong's covariance is for the AUC; use the jackknife for sensitivity or specificity")
    theta = figures(ratings, endpoint, cut)
    matrix = delong_covariance(ratings) if covariance == "delong" else jackknife_covariance(ratings, endpoint, cut)
    parts = variance_components(theta, matrix)
    between_readers = max(parts.cov2 - parts.cov3, 0.0)
    rrrc_denominator = parts.ms_tr + r * between_readers
    frrc_denominator = parts.var_error - parts.cov1 + (r - 1) * between_readers
    if min(rrrc_denominator, frrc_denominator, parts.ms_tr) <= 0 and parts.ms_t == 0:
        raise ValueError(f"the {endpoint} does not vary between readers, modalities or cases: nothing to test")
    if min(rrrc_denominator, frrc_denominator) <= 0:
        raise ValueError(f"the {endpoint} has no case or reader variance to test against (every figure alike)")
    rrrc_df = rrrc_denominator**2 / (parts.ms_tr**2 / ((t - 1) * (r - 1))) if parts.ms_tr > 0 else float("inf")
    result = MrmcResult(endpoint, theta, parts)
    result.overall = {
        "OR RRRC": _f_test(parts.ms_t / rrrc_denominator, t - 1, rrrc_df),
        "OR FRRC": _chi_test(parts.ms_t * (t - 1) / frrc_denominator, t - 1),
        "OR RRFC": _f_test(parts.ms_t / parts.ms_tr, t - 1, (t - 1) * (r - 1)),
    }
    means = theta.mean(axis=1)
    for a, b in combinations(range(t), 2):
        pair = (ratings.modalities[a], ratings.modalities[b])
        difference = float(means[a] - means[b])
        for method, variance, df in (
            ("OR RRRC", rrrc_denominator, rrrc_df),
            ("OR FRRC", frrc_denominator, float("inf")),
            ("OR RRFC", parts.ms_tr, float((t - 1) * (r - 1))),
        ):
            se = float(np.sqrt(2.0 * variance / r))
            result.comparisons.append(_comparison(pair, method, difference, se, df))
    return result


def _comparison(pair: tuple[str, str], method: str, difference: float, se: float, df: float) -> Comparison:
    if np.isinf(df):  # fixed readers: normal / chi-square with 1 df
        half = stats.norm.ppf(0.975) * se
        statistic = (difference / se) ** 2
        return Comparison(
            pair,
            method,
            difference,
            se,
            (difference - half, difference + half),
            statistic,
            1.0,
            float(stats.chi2.sf(statistic, 1)),
        )
    half = stats.t.ppf(0.975, df) * se
    statistic = (difference / se) ** 2
    p_value = float(stats.f.sf(statistic, 1, df))
    return Comparison(
        pair, method, difference, se, (difference - half, difference + half), statistic, float(df), p_value
    )


def _f_test(statistic: float, ndf: float, ddf: float) -> dict[str, float]:
    return {
        "F": float(statistic),
        "ndf": float(ndf),
        "df": float(ddf),
        "p_value": float(stats.f.sf(statistic, ndf, ddf)),
    }


def _chi_test(statistic: float, df: float) -> dict[str, float]:
    return {"chi2": float(statistic), "df": float(df), "p_value": float(stats.chi2.sf(statistic, df))}
