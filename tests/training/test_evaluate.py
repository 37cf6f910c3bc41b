import json
from pathlib import Path

import pytest

from core.metrics import classification_report
from tests.helpers import make_image_folder, run_main, run_subprocess


def run_evaluate(*args):
    return run_main("training.evaluate", *args)


def test_smoke_as_users_run_it(tiny_checkpoint, image_folder):
    result = run_subprocess(
        "training.evaluate",
        "--checkpoint",
        tiny_checkpoint,
        "--data-dir",
        image_folder,
        "--bootstrap",
        "0",
        "--workers",
        "0",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("images=24 ")


def test_report_has_required_keys_and_recomputes(tiny_checkpoint, image_folder, tmp_path):
    out = tmp_path / "report.json"
    result = run_evaluate(
        "--checkpoint",
        tiny_checkpoint,
        "--data-dir",
        image_folder,
        "--output",
        out,
        "--bootstrap",
        "100",
        "--workers",
        "0",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {
        "accuracy",
        "roc_auc",
        "confusion_matrix",
        "threshold",
        "predictions",
        "ece",
        "confidence_intervals",
        "per_class",
        "n_patients",
    } <= set(report)
    assert len(report["predictions"]) == report["n_images"] == 24 and report["n_patients"] == 12
    assert {"path", "label", "p_pneumonia"} <= set(report["predictions"][0])
    labels = [p["label"] for p in report["predictions"]]
    scores = [p["p_pneumonia"] for p in report["predictions"]]
    again = classification_report(labels, scores, report["threshold"])
    assert again["confusion_matrix"] == report["confusion_matrix"]
    assert again["roc_auc"] == pytest.approx(report["roc_auc"])
    (tn, fp), (fn, tp) = report["confusion_matrix"]
    assert tn + fp == labels.count(0) and fn + tp == labels.count(1)
    assert f"accuracy={report['accuracy']:.4f}" in result.stdout


def test_unreadable_images_are_skipped_with_a_warning(tiny_checkpoint, tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=3, size=32)
    (root / "NORMAL" / "IM-0099-0001.png").write_text("not an image")
    out = tmp_path / "r.json"
    result = run_evaluate(
        "--checkpoint", tiny_checkpoint, "--data-dir", root, "--output", out, "--bootstrap", "0", "--workers", "0"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["n_images"] == 6 and len(report["skipped"]) == 1
    assert "warning: skipped" in result.stderr and "Traceback" not in result.stderr


def test_split_part_only(tiny_checkpoint, tmp_path):
    from core.data import grouped_split, save_split, scan_image_folder

    root = make_image_folder(tmp_path / "data", per_class=30, size=16)
    parts = grouped_split(scan_image_folder(root), seed=0)
    save_split(parts, tmp_path / "split.json", root)
    out = tmp_path / "r.json"
    result = run_evaluate(
        "--checkpoint",
        tiny_checkpoint,
        "--data-dir",
        root,
        "--split-file",
        tmp_path / "split.json",
        "--split",
        "test",
        "--output",
        out,
        "--bootstrap",
        "0",
        "--workers",
        "0",
    )
    assert result.returncode == 0, result.stderr
    paths = {p["path"] for p in json.loads(out.read_text())["predictions"]}
    assert paths == {str(Path(r.path).relative_to(root)) for r in parts["test"]}


@pytest.mark.parametrize("bad", ["checkpoint", "data"])
def test_bad_arguments_are_one_line(tiny_checkpoint, image_folder, tmp_path, bad):
    checkpoint = tmp_path / "x.pth" if bad == "checkpoint" else tiny_checkpoint
    data = tmp_path / "missing" if bad == "data" else image_folder
    result = run_evaluate("--checkpoint", checkpoint, "--data-dir", data)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_stress_adds_figures_and_drops_per_perturbation(tiny_checkpoint, image_folder, tmp_path):
    out = tmp_path / "report.json"
    result = run_evaluate(
        "--checkpoint",
        tiny_checkpoint,
        "--data-dir",
        image_folder,
        "--output",
        out,
        "--bootstrap",
        "0",
        "--workers",
        "0",
        "--no-progress",
        "--stress",
        "zoom_in_20,gamma_1.4",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["stress"]) == {"zoom_in_20", "gamma_1.4"}
    for figures in report["stress"].values():
        assert {"accuracy", "sensitivity", "specificity", "roc_auc", "ece", "drop"} <= set(figures)
        assert figures["drop"]["accuracy"] == pytest.approx(report["accuracy"] - figures["accuracy"])


def test_unknown_perturbation_is_one_line_before_any_scoring(tiny_checkpoint, image_folder):
    result = run_evaluate("--checkpoint", tiny_checkpoint, "--data-dir", image_folder, "--stress", "zoom,fog")
    assert result.returncode == 2 and result.stderr.startswith("error: unknown perturbation(s) fog, zoom")
