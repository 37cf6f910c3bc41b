"""``python -m training.site_head``: a new version fitted on reviewed cases, compared before promotion is offered."""

from __future__ import annotations

import io

import pytest

from core.checkpoint import load_checkpoint
from core.inference import Predictor
from core.site_adaptation import is_comparison_case
from service import model_versions, predictions, reviews, store
from service.comparison import promotion_verdict as verdict
from tests.helpers import run_main, xray_like


@pytest.fixture()
def reviewed_store(tmp_path, monkeypatch, tiny_checkpoint):
    """80 reviewed X-ray-like images (half cloudy = PNEUMONIA) logged by the tiny model."""
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'site.db'}")
    engine = store.open_store()
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    for seed in range(80):
        buffer = io.BytesIO()
        xray_like(seed, seed % 2 == 1, 80).save(buffer, "PNG")
        logged = predictions.predict_and_log(engine, predictor, buffer.getvalue(), f"case{seed}.png")
        truth = "PNEUMONIA" if seed % 2 else "NORMAL"
        agrees = logged.result.label == truth
        reviews.submit_review(engine, logged.prediction_id, "Dr A", agrees, None if agrees else truth)
    return engine


def test_fits_a_new_version_and_withholds_promotion_on_too_few_comparison_cases(
    reviewed_store, tiny_checkpoint, tmp_path
):
    output = tmp_path / "site_head.pth"
    args = ["--checkpoint", tiny_checkpoint, "--output", output, "--goal", "sensitivity>=0.9", "--min-per-class", "10"]
    result = run_main("training.site_head", *args, "--bootstrap", "200")
    assert result.returncode == 0, result.stderr
    _, meta = load_checkpoint(output)
    fitted_on = set(meta.train_args["reviewed_provenance"]["train_sha256"])
    cases = reviews.reviewed_cases(reviewed_store)
    held_out = [c for c in cases if is_comparison_case(c.image_sha256)]
    assert fitted_on == {c.image_sha256 for c in cases} - {c.image_sha256 for c in held_out}  # never the held-out part
    assert meta.threshold_goal == "sensitivity>=0.9" and meta.train_args["site_head"]["from_version"].startswith(
        "resnet18@"
    )
    assert f"wrote {output}" in result.stdout and "paired difference site head - in use: accuracy" in result.stdout
    assert f"promotion not offered: {len(held_out)} held-out reviewed case(s)" in result.stdout
    assert not model_versions.promotion_history(reviewed_store)  # the command never promotes


def test_refuses_in_one_line_without_enough_cases(reviewed_store, tiny_checkpoint, tmp_path):
    """35 fitted positives cannot show the default goal (sensitivity>=0.95@0.90): no version, and how many more."""
    result = run_main("training.site_head", "--checkpoint", tiny_checkpoint, "--output", tmp_path / "x.pth")
    assert result.returncode == 2 and "\n" not in result.stderr.strip()
    assert result.stderr.startswith("error: no change: 35 reviewed PNEUMONIA case(s) cannot show sensitivity >= 0.95")
    assert "review at least 10 more (45 in all)" in result.stderr
    assert not (tmp_path / "x.pth").exists()


def _comparison(n: int, accuracy_ci: tuple[float, float], auc_ci: tuple[float, float]) -> dict:
    return {
        "n": n,
        "difference_b_minus_a": {
            "accuracy": {"difference": sum(accuracy_ci) / 2, "ci": list(accuracy_ci)},
            "roc_auc": {"difference": sum(auc_ci) / 2, "ci": list(auc_ci)},
        },
    }


def test_promotion_is_offered_only_when_not_worse_with_confidence():
    assert verdict(_comparison(40, (-0.02, 0.05), (-0.01, 0.03)))[0]
    refused, why = verdict(_comparison(40, (-0.09, -0.01), (-0.01, 0.03)))
    assert not refused and "version B is worse with 95 % confidence on accuracy" in why
    assert not verdict(_comparison(40, (0.0, 0.05), (-0.04, -0.001)))[0]
    assert not verdict(_comparison(12, (0.01, 0.05), (0.0, 0.03)))[0]
