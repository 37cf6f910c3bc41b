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


# A second public data set with a published analysis: Zanca et al. (2009), mammography, 5 modalities x 4
# readers x 200 cases (100 abnormal), FROC marks reduced to the highest rating per case (inferred ROC, 0 =
# no mark). Ratings from RJafroc's inst/MRMCRuns/FED/FED.lrc (DfFroc2Roc(dataset04)); the published
# Obuchowski-Rockette output is Chakraborty's RJafroc book, chapter "Applications using the Obuchowski
# Rockette method", section "RJafroc: dataset04". Printed to 3-6 digits; compared at that precision.
ZANCA = REPO_ROOT / "tests" / "fixtures" / "mrmc" / "zanca_inferred_roc.csv"


@pytest.fixture(scope="module")
def zanca():
    return analyse(Ratings.from_rows(list(csv.DictReader(ZANCA.open()))))


def test_zanca_figures_and_variance_components_match_the_published_values(zanca):
    published_foms = [
        [0.904, 0.798, 0.812, 0.866],
        [0.864, 0.845, 0.821, 0.872],
        [0.813, 0.816, 0.753, 0.857],
        [0.902, 0.832, 0.789, 0.880],
        [0.841, 0.773, 0.771, 0.848],
    ]
    assert zanca.theta == pytest.approx(np.array(published_foms), abs=5e-4)
    assert zanca.theta.mean(axis=1) == pytest.approx([0.845, 0.850, 0.810, 0.851, 0.808], abs=5e-4)
    parts = zanca.components
    # var_TR is negative here: reported as estimated (the literature does not truncate the component itself);
    # only cov2 - cov3 is floored in the denominator.
    assert parts.var_tr == pytest.approx(-1.09e-05, abs=5e-8)
    assert (parts.var_r, parts.cov1, parts.cov2, parts.cov3, parts.var_error) == pytest.approx(
        (1.28e-03, 2.95e-04, 2.33e-04, 2.12e-04, 7.89e-04), abs=5e-6
    )
    assert (parts.ms_t, parts.ms_r, parts.ms_tr) == pytest.approx((0.001897, 0.007294, 0.000462), abs=5e-7)


def test_zanca_omnibus_tests_match_the_published_values(zanca):
    rrrc, frrc, rrfc = (zanca.overall[m] for m in ("OR RRRC", "OR FRRC", "OR RRFC"))
    assert (rrrc["F"], rrrc["ndf"], rrrc["df"], rrrc["p_value"]) == pytest.approx((3.47, 4, 16.8, 0.0305), abs=5e-3)
    assert rrrc["p_value"] == pytest.approx(0.0305, abs=5e-5)
    assert (frrc["chi2"], frrc["p_value"]) == pytest.approx((13.6, 0.00868), abs=(5e-2))
    assert frrc["p_value"] == pytest.approx(0.00868, abs=5e-6)
    assert (rrfc["F"], rrfc["p_value"]) == pytest.approx((4.1, 0.0253), abs=5e-2)
    assert rrfc["p_value"] == pytest.approx(0.0253, abs=5e-5)


# (pair, difference, RRRC CI, RRRC p) from the published $RRRC$ciDiffTrt table.
ZANCA_RRRC = [
    (("1", "2"), -0.005100, (-0.040021, 0.02982), 0.7616),
    (("1", "3"), 0.035325, (0.000404, 0.07025), 0.0477),
    (("1", "4"), -0.005412, (-0.040334, 0.02951), 0.7475),
    (("1", "5"), 0.036775, (0.001854, 0.07170), 0.0402),
    (("2", "3"), 0.040425, (0.005504, 0.07535), 0.0258),
    (("2", "4"), -0.000312, (-0.035234, 0.03461), 0.9851),
    (("2", "5"), 0.041875, (0.006954, 0.07680), 0.0216),
    (("3", "4"), -0.040737, (-0.075659, -0.00582), 0.0249),
    (("3", "5"), 0.001450, (-0.033471, 0.03637), 0.9312),
    (("4", "5"), 0.042187, (0.007266, 0.07711), 0.0208),
]


@pytest.mark.parametrize(("pair", "difference", "ci", "p_value"), ZANCA_RRRC)
def test_zanca_every_pairwise_random_readers_comparison_matches_the_published_table(
    zanca, pair, difference, ci, p_value
):
    found = next(c for c in zanca.comparisons if c.modalities == pair and c.method == "OR RRRC")
    assert found.difference == pytest.approx(difference, abs=1e-6)  # R prints -0.0054125 as -0.005412
    assert found.ci == pytest.approx(ci, abs=5e-6)
    assert found.p_value == pytest.approx(p_value, abs=5e-5)
    assert (found.se, found.df) == pytest.approx((0.0165, 16.8), abs=5e-3)


def test_zanca_fixed_readers_and_fixed_cases_pairs_match_the_published_tables(zanca):
    frrc = next(c for c in zanca.comparisons if c.modalities == ("4", "5") and c.method == "OR FRRC")
    assert (frrc.se, frrc.p_value) == pytest.approx((0.0167, 0.0115), abs=5e-5)
    assert frrc.ci == pytest.approx((0.00945, 0.0749), abs=5e-5)
    rrfc = next(c for c in zanca.comparisons if c.modalities == ("3", "4") and c.method == "OR RRFC")
    assert (rrfc.se, rrfc.df, rrfc.p_value) == pytest.approx((0.0152, 12, 0.0200), abs=5e-5)
    assert rrfc.ci == pytest.approx((-0.07386, -0.00761), abs=5e-6)


def test_figures_with_no_variance_are_refused_in_one_line():
    values = [[[1, 5, 1, 5], [1, 5, 1, 5]], [[1, 5, 1, 5], [1, 5, 1, 5]]]  # perfect and identical everywhere
    with pytest.raises(ValueError, match="does not vary"):
        analyse(_small(values, [0, 1, 0, 1]))
