"""The seed-spread table: means and ranges over seeds, per recipe and per perturbation."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_main, run_subprocess
from training.spread import read_run, recipe_table, spread


def _run(root, recipe, seed, val_auc, spec, noise_spec):
    folder = root / recipe / f"seed{seed}"
    folder.mkdir(parents=True)
    rows = [
        {"epoch": 1, "roc_auc": val_auc - 0.01, "best": True},
        {"epoch": 2, "roc_auc": val_auc, "best": True},
        {"epoch": 3, "roc_auc": 0.5, "best": False},
    ]
    (folder / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    clean = {"accuracy": 0.9, "roc_auc": 0.99, "sensitivity": 0.95, "specificity": spec, "ece": 0.03}
    stress = {
        "noise_8": {**clean, "specificity": noise_spec, "roc_auc": 0.97, "sensitivity": 0.80},
        "zoom_in_20": {**clean, "specificity": spec - 0.1, "roc_auc": 0.98},
    }
    (folder / "stress.json").write_text(json.dumps({**clean, "stress": stress, "predictions": []}))
    return folder


def test_spread_of_three_seeds(tmp_path):
    folders = [
        _run(tmp_path, "baseline", 0, 0.998, 0.95, 0.20),
        _run(tmp_path, "baseline", 1, 0.999, 0.90, 0.40),
        _run(tmp_path, "baseline", 2, 0.997, 0.97, 0.30),
        _run(tmp_path, "robust", 0, 0.996, 0.96, 0.90),
    ]
    runs = [read_run(f) for f in folders]
    assert runs[0].recipe == "baseline" and runs[0].val_roc_auc == 0.998  # the last "best" epoch, not the last
    table = recipe_table(runs)
    base = table["baseline"]
    assert base["val_roc_auc"].n == 3 and base["val_roc_auc"].low == 0.997 and base["val_roc_auc"].high == 0.999
    assert base["test_specificity"].mean == pytest.approx((0.95 + 0.90 + 0.97) / 3)
    assert base["stress_worst_specificity"].low == pytest.approx(0.20)
    assert base["stress_worst_specificity"].high == pytest.approx(0.40)  # seed 1: min(0.40, 0.80)
    assert base["stress_mean_specificity"].mean == pytest.approx(((0.2 + 0.85) + (0.4 + 0.8) + (0.3 + 0.87)) / 6)
    assert table["robust"]["stress_worst_specificity"].text() == "0.860"  # one seed: no range
    assert base["stress_worst_sensitivity"].mean == pytest.approx(0.80)  # noise_8, not zoom_in_20's 0.95
    assert base["stress_mean_sensitivity"].mean == pytest.approx((0.80 + 0.95) / 2)
    assert spread([0.1, 0.3]).text() == "0.200 (0.100-0.300)"


def test_command_prints_markdown_and_json(tmp_path):
    folders = [_run(tmp_path, "baseline", s, 0.99, 0.9, 0.2 + s / 10) for s in range(3)]
    result = run_main("training.spread", *folders, "--json", tmp_path / "t.json")
    assert result.returncode == 0 and "| baseline | 3 |" in result.stdout
    assert "| noise_8 | 0.300 (0.200-0.400) |" in result.stdout
    assert "| sensitivity under | baseline |" in result.stdout and "| noise_8 | 0.800 (0.800-0.800) |" in result.stdout
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["baseline"]["test_specificity"]["seeds"] == 3


def test_a_missing_report_is_one_line(tmp_path):
    folder = _run(tmp_path, "baseline", 0, 0.99, 0.9, 0.2)
    (folder / "stress.json").unlink()
    result = run_subprocess("training.spread", folder)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cannot read a run" in result.stderr
