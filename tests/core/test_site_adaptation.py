import numpy as np
import pytest

from core.metrics import choose_threshold
from core.operating_point import OperatingPoint
from core.site_adaptation import (
    NotEnoughCases,
    cross_validated_performance,
    cross_validated_scores,
    cross_validation_folds,
    fit_platt,
    fit_site_operating_point,
    performance_at,
    propose_site_operating_point,
    shift_warnings,
    threshold_between_cases,
)


def _cases(n=400, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    margins = np.where(labels == 1, rng.normal(3, 2, n), rng.normal(-1, 2, n)) + shift
    return margins, labels


def test_platt_recovers_a_known_calibration():
    # Equal-variance Gaussians: the true log-odds is margin - 1 (slope 1, intercept -1).
    margins, labels = _cases(20000)
    temperature, bias = fit_platt(margins, labels)
    assert temperature == pytest.approx(1.0, abs=0.05) and bias == pytest.approx(-1.0, abs=0.08)


def test_platt_stays_finite_on_separated_cases():
    margins = np.array([-6.0, -5.0, -4.0, 4.0, 5.0, 6.0])
    temperature, bias = fit_platt(margins, np.array([0, 0, 0, 1, 1, 1]))
    assert 0.5 < temperature < 20 and abs(bias) < 2


def test_reversed_scores_are_refused():
    margins, labels = _cases()
    with pytest.raises(NotEnoughCases, match="do not separate"):
        fit_platt(-margins, labels)


def test_too_few_cases_of_a_class_are_refused():
    margins, labels = np.array([1.0] * 30 + [-1.0] * 5), np.array([1] * 30 + [0] * 5)
    with pytest.raises(NotEnoughCases, match="at least 20 .* have 5 NORMAL and 30 PNEUMONIA"):
        fit_site_operating_point(margins, labels, "sensitivity>=0.95")


def test_site_point_meets_its_goal_on_the_fitted_cases():
    margins, labels = _cases(seed=1, shift=2.0)  # the site's scores lean towards PNEUMONIA
    point = fit_site_operating_point(margins, labels, "sensitivity>=0.95")
    figures = performance_at(point, margins, labels, bootstrap=0)
    assert figures["sensitivity"] >= 0.95
    assert figures["ece"] < 0.05


def test_threshold_sits_between_two_cases():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    raw = choose_threshold(labels, scores, "sensitivity>=0.95")
    assert raw == pytest.approx(0.6)
    middle = threshold_between_cases(labels, scores, "sensitivity>=0.95")
    assert 0.3 < middle < 0.6
    assert ((scores >= middle) == (scores >= raw)).all()  # the same calls on the fitted cases


def test_folds_are_disjoint_and_cover_every_case_once():
    _, labels = _cases(97)
    folds = cross_validation_folds(labels, 5, seed=3)
    estimated = np.concatenate([estimate for _, estimate in folds])
    assert sorted(estimated.tolist()) == list(range(97))
    for fit, estimate in folds:
        assert not set(fit) & set(estimate)


def test_a_case_is_never_scored_by_a_fit_that_saw_it():
    # Flipping one case's label leaves its own cross-validated score unchanged (it was not in its fit)
    # but moves the scores of cases in other folds (whose fits included it).
    margins, labels = _cases(120, seed=4)
    folds = cross_validation_folds(labels, 5, 0)
    victim = folds[0][1][0]
    flipped = labels.copy()
    flipped[victim] = 1 - flipped[victim]
    before, _ = cross_validated_scores(margins, labels, "youden", folds)
    after, _ = cross_validated_scores(margins, flipped, "youden", folds)
    assert after[folds[0][1]] == pytest.approx(before[folds[0][1]])
    assert not np.allclose(after[folds[1][1]], before[folds[1][1]])
    figures = cross_validated_performance(margins, labels, "youden", bootstrap=0)
    assert figures["n"] == 120 and figures["estimate"] == "5-fold cross-validation"


def test_proposal_reports_before_and_cross_validated_after():
    margins, labels = _cases(300, seed=5, shift=2.5)
    current = OperatingPoint(threshold=0.5, temperature=1.0)
    proposal = propose_site_operating_point(current, margins, labels, "sensitivity>=0.95", bootstrap=200)
    assert proposal.before["specificity"] < proposal.after["specificity"]
    assert proposal.before["operating_point"]["threshold"] == 0.5
    for figures in (proposal.before, proposal.after):
        low, high = figures["confidence_intervals"]["accuracy"]
        assert low <= figures["accuracy"] <= high


def test_shift_warning_names_the_figure_and_both_values():
    site = {
        "specificity": 0.74,
        "confidence_intervals": {"specificity": [0.68, 0.80]},
        "sensitivity": 0.99,
        "accuracy": None,
    }
    lines = shift_warnings(site, {"specificity": 0.995, "sensitivity": 0.99})
    assert lines == ["specificity on reviewed cases 0.740 (0.680-0.800) vs 0.995 on the held-out split"]


def _proposal(before: dict, after: dict, normal=(0, 0), pneumonia=(0, 0)):
    from core.operating_point import OperatingPoint
    from core.site_adaptation import SiteProposal

    point = OperatingPoint(threshold=0.6, temperature=1.0, goal="sensitivity>=0.95@0.9")
    paired = {"normal": dict(zip(("better", "worse"), normal)), "pneumonia": dict(zip(("better", "worse"), pneumonia))}
    return SiteProposal(point, before, after, paired)


def test_with_the_goal_met_already_a_change_must_be_better_on_the_other_figure_with_confidence():
    before = {"sensitivity": 0.99, "sensitivity_lower": 0.96}
    after = {"sensitivity": 0.97, "sensitivity_lower": 0.945}  # lower than in force: allowed, the goal holds
    assert _proposal(before, after, normal=(9, 1)).problems() == []  # p = 11/1024
    weak = _proposal(before, after, normal=(3, 1))
    assert weak.problems() == [
        "the point in force meets the goal already and the proposal is not better on specificity with 90% "
        "confidence (3 case(s) better, 1 worse; one-sided exact McNemar p = 0.312)"
    ]
    assert weak.figures()["problems"] == weak.problems() and weak.figures()["paired"]["normal"]["better"] == 3


def test_a_cross_validated_estimate_below_the_goal_is_refused():
    before = {"sensitivity": 0.99, "sensitivity_lower": 0.96}
    missed = _proposal(before, {"sensitivity": 0.929, "sensitivity_lower": 0.88}, normal=(20, 0))
    assert missed.problems() == ["the cross-validated sensitivity 0.929 misses the goal 0.95"]


def test_with_the_goal_missed_in_force_a_change_must_show_it_or_catch_more():
    before = {"sensitivity": 0.93, "sensitivity_lower": 0.88}  # the point in force misses the goal
    assert _proposal(before, {"sensitivity": 0.985, "sensitivity_lower": 0.955}).problems() == []
    assert _proposal(before, {"sensitivity": 0.98, "sensitivity_lower": 0.94}, pneumonia=(4, 0)).problems() == []
    stuck = _proposal(before, {"sensitivity": 0.96, "sensitivity_lower": 0.93}, normal=(10, 0))
    assert stuck.problems() == [
        "neither point shows the goal and the proposal is not better on sensitivity with 90% confidence "
        "(0 case(s) better, 0 worse; one-sided exact McNemar p = 1.000)"
    ]


def test_an_uncertain_lower_bound_alone_does_not_license_trading_specificity_away():
    """In force: 0.985 on the sample, lower bound 0.93 (few positives): no evidence that it misses the goal."""
    before = {"sensitivity": 0.985, "sensitivity_lower": 0.93}
    catches_one = _proposal(before, {"sensitivity": 1.0, "sensitivity_lower": 0.96}, normal=(0, 9), pneumonia=(1, 0))
    assert catches_one.problems()[0].startswith(
        "the point in force meets the goal already and the proposal is not better on specificity"
    )


def test_paired_improvement_p_is_the_exact_binomial_tail():
    from core.confident_goals import paired_improvement_p

    assert paired_improvement_p(4, 0) == pytest.approx(1 / 16)
    assert paired_improvement_p(5, 1) == pytest.approx(7 / 64)
    assert paired_improvement_p(0, 0) == 1.0
    assert paired_improvement_p(1, 5) == pytest.approx(63 / 64)


def test_paired_changes_count_each_class_both_ways():
    from core.site_adaptation import paired_changes

    labels = np.array([0, 0, 0, 1, 1, 1])
    before = np.array([1, 1, 0, 1, 0, 1])
    after = np.array([0, 1, 1, 1, 1, 0])
    assert paired_changes(labels, before, after) == {
        "normal": {"better": 1, "worse": 1},
        "pneumonia": {"better": 1, "worse": 1},
    }


def test_goal_misses_reads_each_goal_in_a_recorded_goal_text():
    from core.site_adaptation import goal_misses

    recorded = "sensitivity>=0.95 (validation + shifts: zoom_in_10,noise_8)"
    assert goal_misses(recorded, {"sensitivity": 0.96}) == []
    assert goal_misses(recorded, {"sensitivity": 0.93}) == [f"sensitivity 0.930 is below the goal 0.95 ({recorded})"]
    assert goal_misses("sensitivity>=0.95@0.9", {"sensitivity": 0.94}) != []
    assert goal_misses("youden", {"sensitivity": 0.1}) == []
