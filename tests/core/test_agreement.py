"""Reader statistics against hand-worked and reference values."""

import math

import pytest

from core.agreement import cohen_kappa, fleiss, pairwise_kappa, reader_figures, wilson


def test_wilson_interval_matches_the_closed_form():
    result = wilson(9, 10)
    z = 1.959963984540054
    centre = (0.9 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.9 * 0.1 / 10 + z * z / 400)
    assert result.value == 0.9
    assert result.low == pytest.approx(centre - half) and result.high == pytest.approx(centre + half)
    assert result.text().startswith("0.900 (0.596-0.982)")


def test_wilson_stays_inside_zero_one_at_the_extremes():
    assert wilson(0, 5).low == 0.0 and 0 < wilson(0, 5).high < 0.5
    assert wilson(5, 5).high == pytest.approx(1.0) and wilson(5, 5).low > 0.5
    assert math.isnan(wilson(0, 0).value) and wilson(0, 0).text() == "n/a"


def test_reader_figures_count_each_class_separately():
    reference = ["PNEUMONIA"] * 4 + ["NORMAL"] * 3
    calls = ["PNEUMONIA", "PNEUMONIA", "PNEUMONIA", "NORMAL", "NORMAL", "PNEUMONIA", "NORMAL"]
    figures = reader_figures(calls, reference)
    assert (figures.sensitivity.count, figures.sensitivity.total) == (3, 4)
    assert (figures.specificity.count, figures.specificity.total) == (2, 3)
    with pytest.raises(ValueError):
        reader_figures(calls[:2], reference)


def test_cohen_kappa_agrees_with_the_textbook_example():
    # 2x2 table a=20 b=5 c=10 d=15 (Wikipedia's example): kappa = 0.4
    first = ["PNEUMONIA"] * 25 + ["NORMAL"] * 25
    second = ["PNEUMONIA"] * 20 + ["NORMAL"] * 5 + ["PNEUMONIA"] * 10 + ["NORMAL"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert math.isnan(cohen_kappa(["NORMAL"] * 3, ["NORMAL"] * 3))


def test_pairwise_kappa_uses_only_shared_cases():
    calls = {"A": {1: "NORMAL", 2: "PNEUMONIA", 3: "PNEUMONIA"}, "B": {2: "PNEUMONIA", 3: "NORMAL", 4: "NORMAL"}}
    (pair,) = pairwise_kappa(calls)
    assert (pair.first, pair.second, pair.n, pair.agreement) == ("A", "B", 2, 0.5)


def test_fleiss_kappa_matches_a_hand_computation_and_drops_other_reader_counts():
    cases = [["PNEUMONIA"] * 3, ["NORMAL"] * 3, ["PNEUMONIA", "PNEUMONIA", "NORMAL"], ["NORMAL", "NORMAL", "PNEUMONIA"]]
    # P_i = (1, 1, 1/3, 1/3) -> P_bar = 2/3; p_j = (1/2, 1/2) -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3
    result = fleiss(cases + [["NORMAL", "PNEUMONIA"]])
    assert result.kappa == pytest.approx(1 / 3) and result.cases == 4 and result.readers_per_case == 3
    assert fleiss([["NORMAL"]]).cases == 0


def test_readers_without_shared_cases_make_no_pair():
    assert pairwise_kappa({"A": {1: "NORMAL"}, "B": {2: "NORMAL"}}) == []
