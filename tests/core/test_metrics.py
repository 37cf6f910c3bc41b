import math

import numpy as np
import pytest

from core.metrics import (
    bootstrap_intervals,
    choose_threshold,
    classification_report,
    confusion_rates,
    expected_calibration_error,
)

# Hand-worked example: 4 NORMAL, 6 PNEUMONIA.
LABELS = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
SCORES = [0.1, 0.2, 0.6, 0.3, 0.9, 0.8, 0.4, 0.7, 0.95, 0.55]


def test_confusion_matrix_and_rates_by_hand():
    # At 0.5: NORMAL 0.6 is a FP; PNEUMONIA 0.4 is a FN.
    point = confusion_rates(LABELS, SCORES, 0.5)
    assert point["confusion_matrix"] == [[3, 1], [1, 5]]
    assert point["sensitivity"] == pytest.approx(5 / 6)
    assert point["specificity"] == pytest.approx(3 / 4)
    assert point["ppv"] == pytest.approx(5 / 6)
    assert point["npv"] == pytest.approx(3 / 4)
    assert point["accuracy"] == pytest.approx(0.8)


def test_ppv_npv_at_given_prevalence():
    point = confusion_rates(LABELS, SCORES, 0.5, prevalence=0.1)
    sens, spec = 5 / 6, 3 / 4
    assert point["ppv"] == pytest.approx(sens * 0.1 / (sens * 0.1 + (1 - spec) * 0.9))
    assert point["npv"] == pytest.approx(spec * 0.9 / (spec * 0.9 + (1 - sens) * 0.1))


def test_report_by_hand():
    report = classification_report(LABELS, SCORES, 0.5)
    assert report["accuracy"] == pytest.approx(0.8)
    assert report["confusion_matrix"] == [[3, 1], [1, 5]]
    # AUC: of 24 (pos, neg) pairs, the ones ranked wrong: 0.4<0.6, 0.55<0.6 -> 22/24.
    assert report["roc_auc"] == pytest.approx(22 / 24)
    assert report["per_class"]["NORMAL"]["recall"] == pytest.approx(0.75)
    assert report["per_class"]["PNEUMONIA"]["precision"] == pytest.approx(5 / 6)
    assert report["per_class"]["PNEUMONIA"]["f1"] == pytest.approx(5 / 6)
    assert report["brier"] == pytest.approx(np.mean((np.array(SCORES) - np.array(LABELS)) ** 2))
    assert report["roc_curve"]["fpr"][0] == 0 and report["roc_curve"]["tpr"][-1] == 1


def test_ece_by_hand():
    # Two samples: p=0.9 correct (conf 0.9) and p=0.8 wrong (conf 0.8), different bins.
    assert expected_calibration_error([1, 0], [0.9, 0.8]) == pytest.approx(0.5 * 0.1 + 0.5 * 0.8)
    assert expected_calibration_error([1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]) == pytest.approx(0.0)


def test_threshold_goals():
    # Youden by hand: at 0.4 sens 6/6 + spec 3/4 = 1.75 beats 0.7 (4/6 + 1) and 0.55 (5/6 + 3/4).
    youden = choose_threshold(LABELS, SCORES, "youden")
    assert youden == pytest.approx(0.4)
    point = confusion_rates(LABELS, SCORES, youden)
    assert point["sensitivity"] + point["specificity"] == pytest.approx(1.75)
    high = choose_threshold(LABELS, SCORES, "sensitivity>=0.95")
    assert confusion_rates(LABELS, SCORES, high)["sensitivity"] == 1.0
    assert high == pytest.approx(0.4)
    with pytest.raises(ValueError):
        choose_threshold(LABELS, SCORES, "magic")


def test_bootstrap_intervals_contain_the_estimate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.4 + rng.random(300) * 0.6, 0, 1)
    ci = bootstrap_intervals(labels, scores, 0.5, n_resamples=200)
    report = classification_report(labels, scores, 0.5)
    for key in ("accuracy", "roc_auc"):
        low, high = ci[key]
        assert low < report[key] < high and high - low < 0.2


def test_single_class_has_no_auc():
    report = classification_report([1, 1], [0.2, 0.9])
    assert report["roc_auc"] is None and math.isnan(report["specificity"])


def test_paired_difference_of_a_model_with_itself_is_zero():
    import numpy as np

    from core.metrics import paired_bootstrap_difference

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = rng.random(60)
    calls = (scores >= 0.5).astype(int)
    result = paired_bootstrap_difference(labels, calls, scores, calls, scores, 200)
    assert result["accuracy"] == {"difference": 0.0, "ci": [0.0, 0.0]}
    assert result["roc_auc"] == {"difference": 0.0, "ci": [0.0, 0.0]}
