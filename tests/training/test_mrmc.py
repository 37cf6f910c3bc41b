"""``python -m training.mrmc``: the analysis from a ratings file, as text and JSON, and bad files in one line."""

from __future__ import annotations

import json

import pytest

from tests.core.test_mrmc import VANDYKE
from tests.helpers import run_main, run_subprocess


@pytest.mark.skipif(not VANDYKE.exists(), reason="../shared/data/mrmc/vandyke.csv is not in this workplace")
def test_json_has_the_modalities_and_the_random_readers_random_cases_comparison_first():
    result = run_subprocess("training.mrmc", "--input", VANDYKE, "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["modalities"]["1"]["auc"] == pytest.approx(0.89703704, abs=1e-8)
    first = record["comparisons"][0]
    assert first["method"] == "OR RRRC" and first["modalities"] == ["1", "2"]
    assert first["difference"] == pytest.approx(-0.04380032, abs=1e-8)
    assert first["ci"] == pytest.approx([-0.0879595, 0.0003589], abs=1e-7)
    assert (first["F"], first["df"], first["p_value"]) == pytest.approx((4.456319, 15.25967, 0.05166569), abs=1e-5)
    text = run_main("training.mrmc", "--input", VANDYKE)
    assert "OR RRRC 1 - 2: -0.0438 (SE 0.0207, 95 % CI -0.0880 to +0.0004)" in text.stdout


def test_bad_ratings_files_are_one_line(tmp_path):
    missing = tmp_path / "missing.csv"
    missing.write_text("reader,case,truth\n1,1,0\n")
    result = run_main("training.mrmc", "--input", missing)
    assert (
        result.returncode == 2
        and result.stderr.startswith("error: ")
        and "missing column(s) modality, rating" in result.stderr
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("reader,case,modality,truth,rating\n1,1,1,yes,2\n")
    result = run_main("training.mrmc", "--input", bad)
    assert result.returncode == 2 and "line 2: truth must be 0 or 1" in result.stderr
    result = run_main("training.mrmc", "--input", tmp_path / "absent.csv")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    flat = tmp_path / "flat.csv"
    rows = [f"{r},{k},{m},{k % 2},{1 + 4 * (k % 2)}" for m in ("A", "B") for r in (1, 2) for k in range(6)]
    flat.write_text("reader,case,modality,truth,rating\n" + "\n".join(rows) + "\n")
    result = run_main("training.mrmc", "--input", flat)
    assert result.returncode == 2 and "does not vary" in result.stderr and "Traceback" not in result.stderr
