"""core.mrmc against the published Obuchowski-Rockette analysis of Van Dyke et al. (1993) and small hand cases."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from core.mrmc import Ratings, analyse, empirical_auc, jackknife_covariance, variance_components
from tests.helpers import REPO_ROOT

VANDYKE = REPO_ROOT.parent / "shared" / "data" / "mrmc" / "vandyke.csv"


@pytest.fixture(scope="module")
def vandyke():
    if not VANDYKE.exists():
        pytest.skip("../shared/data/mrmc/vandyke.csv is not in this workplace")
    return Ratings.from_rows(list(csv.DictReader(VANDYKE.open())))


def _by_method(result, method):
    return next(c for c in result.comparisons if c.method == method)


def test_van_dyke_aucs_and_variance_components_match_the_published_values(vandyke):
    result = analyse(vandyke)
    assert result.theta.mean(axis=1) == pytest.approx([0.89703704, 0.94083736], abs=5e-9)
    published = {
        "var_r": 0.0015349993,
        "var_tr": 0.0002004025,
        "var_error": 0.0008022883,
        "cov1": 0.0003466137,
        "cov2": 0.0003440748,
        "cov3": 0.0002390284,
    }
    components = result.components.as_dict()
    for name, value in published.items():
        assert components[name] == pytest.approx(value, abs=5e-11), name


def test_van_dyke_random_and_fixed_analyses_match_the_published_values(vandyke):
    result = analyse(vandyke)
    rrrc = _by_method(result, "OR RRRC")
    assert rrrc.difference == pytest.approx(-0.04380032, abs=5e-9)
    assert (rrrc.statistic, rrrc.df, rrrc.p_value, rrrc.se) == pytest.approx(
        (4.456319, 15.25967, 0.05166569, 0.02074862), abs=5e-6
    )
    assert rrrc.ci == pytest.approx((-0.0879595, 0.0003589), abs=5e-8)
    frrc = _by_method(result, "OR FRRC")
    assert (frrc.statistic, frrc.p_value, frrc.se) == pytest.approx((5.475953, 0.01927984, 0.01871748), abs=5e-7)
    assert frrc.ci == pytest.approx((-0.0804859, -0.0071147), abs=5e-8)
    rrfc = _by_method(result, "OR RRFC")
    assert (rrfc.statistic, rrfc.df, rrfc.p_value, rrfc.se) == pytest.approx(
        (8.704, 4, 0.04195875, 0.01484629), abs=5e-7
    )
    assert rrfc.ci == pytest.approx((-0.0850202, -0.0025804), abs=5e-8)
    assert result.overall["OR RRRC"]["F"] == pytest.approx(rrrc.statistic)  # two modalities: one comparison


def test_van_dyke_delong_and_binary_sensitivity_match_the_published_values(vandyke):
    delong = _by_method(analyse(vandyke, covariance="delong"), "OR RRRC")
    assert (delong.statistic, delong.df, delong.p_value) == pytest.approx((4.484854, 15.06611, 0.05123303), abs=5e-6)
    sensitivity = _by_method(analyse(vandyke, endpoint="sensitivity", cut=3), "OR RRRC")
    assert sensitivity.difference == pytest.approx(-0.09777778, abs=5e-9)
    assert (sensitivity.se, sensitivity.statistic, sensitivity.df, sensitivity.p_value) == pytest.approx(
        (0.03780451, 6.689493, 15.71732, 0.02008822), abs=5e-6
    )
    assert sensitivity.ci == pytest.approx((-0.1780371, -0.0175185), abs=5e-8)


def _small(values, truth, modalities=("A", "B")):
    rows = [
        {"reader": f"r{j}", "case": f"c{k}", "modality": m, "truth": truth[k], "rating": values[i][j][k]}
        for i, m in enumerate(modalities)
        for j in range(len(values[0]))
        for k in range(len(truth))
    ]
    return Ratings.from_rows(rows)


def test_empirical_auc_and_jackknife_by_hand():
    assert empirical_auc(np.array([3.0, 5.0]), np.array([1.0, 3.0])) == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    truth = [0, 0, 1, 1]
    ratings = _small([[[1, 2, 3, 4], [1, 3, 2, 4]], [[2, 1, 4, 3], [1, 2, 3, 3]]], truth)
    covariance = jackknife_covariance(ratings)
    # reader r1, modality A: AUC 1.0 with any case left out; r2: leaving out case 1 or 2 gives 1, else 0.5
    theta_r2 = np.array([1.0, 1.0, 0.5, 0.5])  # leave out c0, c1, c2, c3 (ratings 1,3 | 2,4)
    by_hand = 3 / 4 * np.sum((theta_r2 - theta_r2.mean()) ** 2)
    assert covariance[0, 0] == pytest.approx(0.0) and covariance[1, 1] == pytest.approx(by_hand)


def test_a_negative_reader_covariance_difference_is_floored_at_zero_and_flat_readers_score_one_half():
    rng = np.random.default_rng(3)
    truth = [0] * 10 + [1] * 10
    values = rng.integers(1, 6, size=(2, 3, 20)).astype(float)
    values[0, 2] = 3.0  # a reader who gives every case the same rating
    ratings = _small(values.tolist(), truth)
    result = analyse(ratings)
    assert result.theta[0, 2] == 0.5
    parts = result.components
    rrrc = _by_method(result, "OR RRRC")
    floor = max(parts.cov2 - parts.cov3, 0.0)
    assert rrrc.se == pytest.approx(np.sqrt(2 * (parts.ms_tr + 3 * floor) / 3))
    theta = result.theta
    assert variance_components(theta, np.eye(6) * 0.01).cov2 == 0.0  # no between-reader covariance at all


def test_three_modalities_give_every_pair_and_an_omnibus_test():
    rng = np.random.default_rng(1)
    truth = [0] * 12 + [1] * 12
    values = (rng.normal(size=(3, 4, 24)) + np.array(truth) * np.array([0.5, 1.0, 2.0])[:, None, None]).tolist()
    result = analyse(_small(values, truth, ("x", "y", "z")))
    pairs = [c.modalities for c in result.comparisons if c.method == "OR RRRC"]
    assert pairs == [("x", "y"), ("x", "z"), ("y", "z")]
    assert result.overall["OR RRRC"]["ndf"] == 2 and 0 <= result.overall["OR RRRC"]["p_value"] <= 1


def test_an_incomplete_design_is_refused():
    rows = [{"reader": "a", "case": "1", "modality": "m", "truth": 1, "rating": 2}]
    rows += [{"reader": "a", "case": "2", "modality": "m", "truth": 0, "rating": 1}]
    rows += [{"reader": "b", "case": "1", "modality": "m", "truth": 1, "rating": 2}]
    with pytest.raises(ValueError, match="1 reading"):
        Ratings.from_rows(rows)
    with pytest.raises(ValueError, match="two modalities"):
        analyse(_small([[[1, 2], [2, 1]]], [0, 1], ("only",)))
