"""Goals with a confidence: exact lower bounds against their closed forms, and thresholds that honour them."""

from __future__ import annotations

import numpy as np
import pytest

from core.confident_goals import Goal, cases_needed, confident_threshold, lower_bound, misses_allowed, shortfall
from core.site_adaptation import NotEnoughCases, fit_site_operating_point


def test_goal_parsing_and_refusals():
    assert Goal.parse("sensitivity>=0.95@0.90") == Goal("sensitivity", 0.95, 0.90)
    assert Goal.parse(" specificity>=0.8 ") == Goal("specificity", 0.8, None)
    assert str(Goal.parse("sensitivity>=0.95@0.9")) == "sensitivity>=0.95@0.9"
    for bad in ("accuracy>=0.9", "sensitivity>=1.5", "sensitivity>=0.95@1.0", "sensitivity>=x", "youden@0.9"):
        with pytest.raises(ValueError, match="goal"):
            Goal.parse(bad)


@pytest.mark.parametrize("n", [1, 10, 45, 56, 300])
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95])
def test_lower_bound_closed_forms(n, confidence):
    # all n caught: Beta(n, 1) quantile; one caught: Beta(1, n) quantile
    assert lower_bound(n, n, confidence) == pytest.approx((1 - confidence) ** (1 / n), rel=1e-9)
    assert lower_bound(1, n, confidence) == pytest.approx(1 - confidence ** (1 / n), rel=1e-9)
    assert lower_bound(0, n, confidence) == 0.0


def test_misses_allowed_and_cases_needed():
    # 0.1 ** (1 / 45) = 0.9501 >= 0.95 but 0.1 ** (1 / 44) = 0.9490: 45 positives, none missed, is the least
    assert cases_needed(0.95, 0.90) == 45
    assert misses_allowed(44, 0.95, 0.90) is None and misses_allowed(45, 0.95, 0.90) == 0
    assert misses_allowed(56, 0.95, 0.90) == 0  # the sample rule would allow two misses here
    assert misses_allowed(300, 0.95, 0.90) == 9
    assert lower_bound(291, 300, 0.90) >= 0.95 > lower_bound(290, 300, 0.90)
    assert cases_needed(0.95, 0.90, misses=9) <= 300 < cases_needed(0.95, 0.90, misses=10)


def test_confident_threshold_keeps_the_positives_the_bound_needs():
    rng = np.random.default_rng(0)
    positives, negatives = np.sort(rng.uniform(0.5, 1.0, 300)), rng.uniform(0.0, 0.6, 200)
    labels = np.r_[np.ones(300, int), np.zeros(200, int)]
    scores = np.r_[positives, negatives]
    threshold = confident_threshold(labels, scores, Goal("sensitivity", 0.95, 0.90))
    assert threshold == positives[9]  # 9 misses allowed: exactly those 9 fall below
    assert int((positives < threshold).sum()) == 9
    specificity = confident_threshold(labels, scores, Goal("specificity", 0.9, 0.9))
    assert specificity is not None and lower_bound(int((negatives < specificity).sum()), 200, 0.9) >= 0.9
    assert confident_threshold(labels[:100], scores[:100], Goal("sensitivity", 0.99, 0.9)) is None


def test_too_few_positives_is_no_change_with_how_many_more(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(30, int), np.zeros(30, int)]
    margins = np.where(labels == 1, rng.normal(3, 1, 60), rng.normal(-3, 1, 60))
    with pytest.raises(NotEnoughCases, match=r"no change: 30 reviewed PNEUMONIA case\(s\).*at least 15 more \(45"):
        fit_site_operating_point(margins, labels, "sensitivity>=0.95@0.90")
    assert "review at least 15 more" in shortfall(labels, Goal("sensitivity", 0.95, 0.9))
    point = fit_site_operating_point(margins, labels, "sensitivity>=0.95")  # the sample rule still answers
    assert point.goal == "sensitivity>=0.95"


def test_a_confident_site_point_never_misses_more_than_the_bound_allows():
    rng = np.random.default_rng(2)
    labels = np.r_[np.ones(56, int), np.zeros(44, int)]  # the worst draw: 56 reviewed positives
    margins = np.where(labels == 1, rng.normal(2, 1.5, 100), rng.normal(-1, 1.5, 100))  # overlapping classes
    sample = fit_site_operating_point(margins, labels, "sensitivity>=0.95")
    confident = fit_site_operating_point(margins, labels, "sensitivity>=0.95@0.90")
    missed = {
        name: int((point.p_pneumonia_from_margin(margins[labels == 1]) < point.threshold).sum())
        for name, point in (("sample", sample), ("confident", confident))
    }
    assert missed == {"sample": 2, "confident": 0}  # 56 positives: the bound allows no miss, the sample two
    assert confident.threshold <= sample.threshold and confident.goal == "sensitivity>=0.95@0.90"
