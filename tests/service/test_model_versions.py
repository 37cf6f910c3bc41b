"""Model versions: promotion and rollback (logged), the checkpoint in force, paired comparison."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from core.inference import Predictor
from core.operating_point import OperatingPoint
from service import comparison, model_versions, predictions, reviews, store
from tests.helpers import png_bytes, run_main


@pytest.fixture()
def two_versions(tmp_path, tiny_checkpoint):
    """Two distinct checkpoints (same weights, another temperature and threshold) in a models folder."""
    folder = tmp_path / "models"
    folder.mkdir()
    first = folder / "first.pth"
    model, meta = load_checkpoint(tiny_checkpoint)
    save_checkpoint(first, model, CheckpointMeta(**{**meta.to_dict(), "threshold": 0.45}))  # not the default
    second = folder / "second.pth"
    save_checkpoint(second, model, CheckpointMeta(**{**meta.to_dict(), "temperature": 0.7, "threshold": 0.4}))
    return first, second


def test_promote_and_roll_back_are_logged(engine, two_versions, monkeypatch, tiny_checkpoint):
    first, second = two_versions
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(tiny_checkpoint))
    assert model_versions.checkpoint_in_force(engine) == (tiny_checkpoint, "default checkpoint")
    with pytest.raises(store.ValidationError, match="nothing to roll back"):
        model_versions.rollback(engine, "Dr Lead")
    model_versions.promote(engine, first, "Dr Lead", "validated on site cases")
    promoted = model_versions.promote(engine, second, "Dr Lead", "better specificity")
    assert model_versions.checkpoint_in_force(engine)[0] == second.resolve()
    assert promoted.reason == "better specificity" and promoted.promoted_by == "Dr Lead"
    back = model_versions.rollback(engine, "Dr Other")
    assert model_versions.checkpoint_in_force(engine)[0] == first.resolve()
    assert back.reason.startswith("rollback from resnet18@") and back.promoted_by == "Dr Other"
    history = model_versions.promotion_history(engine)
    assert [h.checkpoint_path for h in history] == [str(first.resolve()), str(second.resolve()), str(first.resolve())]
    with pytest.raises(store.ValidationError, match="name must not be empty"):
        model_versions.promote(engine, second, "  ", "reason")
    with pytest.raises(store.ValidationError, match="a reason is required"):
        model_versions.promote(engine, second, "Dr Lead", "  ")
    with pytest.raises(store.ValidationError, match="is the version in use already"):
        model_versions.promote(engine, first, "Dr Lead", "again")
    assert len(model_versions.promotion_history(engine)) == 3


def test_rolling_back_to_the_version_in_use_is_refused(engine, monkeypatch, tmp_path, tiny_checkpoint):
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(tiny_checkpoint))
    copy = tmp_path / "copy.pth"
    shutil.copy(tiny_checkpoint, copy)
    with pytest.raises(store.ValidationError, match="is the version in use already"):
        model_versions.promote(engine, copy, "Dr Lead", "the same bytes")  # nothing promoted, nothing to undo
    with pytest.raises(store.ValidationError, match="nothing to roll back"):
        model_versions.rollback(engine, "Dr Lead")


def test_a_changed_or_missing_promoted_file_is_not_used(engine, two_versions, monkeypatch, tiny_checkpoint):
    first, _ = two_versions
    monkeypatch.setenv("PNEUMONIA_CHECKPOINT", str(tiny_checkpoint))
    model_versions.promote(engine, first, "Dr Lead", "site validation")
    with open(first, "ab") as handle:
        handle.write(b"tampered")
    path, why = model_versions.checkpoint_in_force(engine)
    assert path == tiny_checkpoint and "changed since" in why
    first.unlink()
    path, why = model_versions.checkpoint_in_force(engine)
    assert path == tiny_checkpoint and "missing" in why


def test_command_lines_use_the_promoted_version(engine, data_dir, two_versions, tmp_path):
    _, second = two_versions
    promoted = model_versions.promote(engine, second, "Dr Lead", "better specificity")
    image = tmp_path / "x.png"
    image.write_bytes(png_bytes(1, 96))
    result = run_main("core.predict", image, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == promoted.version


def test_paired_comparison_on_reports_matches_hand_computation():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    pa = np.array([0.1, 0.6, 0.3, 0.7, 0.4, 0.9, 0.8, 0.2])
    pb = np.array([0.1, 0.2, 0.3, 0.7, 0.6, 0.9, 0.8, 0.4])
    point = OperatingPoint(threshold=0.5, temperature=1.0)

    def report(p):
        return {
            "operating_point": point.to_dict(),
            "predictions": [
                {"path": f"{i}.png", "label": int(y), "p_pneumonia": float(s)}
                for i, (y, s) in enumerate(zip(labels, p, strict=True))
            ],
        }

    class Fixed:  # the comparison needs only an operating point and a threshold from each version
        def __init__(self):
            self.point, self.threshold = point, 0.5

    figures = comparison.compare_on_reports(Fixed(), report(pa), Fixed(), report(pb), bootstrap=200)
    accuracy_a, accuracy_b = ((pa >= 0.5) == labels).mean(), ((pb >= 0.5) == labels).mean()
    assert figures["n"] == 8
    assert figures["a"]["accuracy"] == pytest.approx(accuracy_a) and figures["b"]["accuracy"] == pytest.approx(
        accuracy_b
    )
    difference = figures["difference_b_minus_a"]
    assert difference["accuracy"]["difference"] == pytest.approx(accuracy_b - accuracy_a)
    assert difference["roc_auc"]["difference"] == pytest.approx(roc_auc_score(labels, pb) - roc_auc_score(labels, pa))
    low, high = difference["accuracy"]["ci"]
    assert low <= difference["accuracy"]["difference"] <= high


def test_comparison_on_reviewed_cases_uses_only_the_comparison_part(engine, two_versions):
    from core.site_adaptation import is_comparison_case

    first, second = two_versions
    a, b = Predictor.from_checkpoint(first, "cpu"), Predictor.from_checkpoint(second, "cpu")
    kept = 0
    for seed in range(40):
        data = png_bytes(seed, 96)
        logged = predictions.predict_and_log(engine, a, data, f"{seed}.png")
        truth = "PNEUMONIA" if seed % 2 else "NORMAL"
        agrees = logged.result.label == truth
        reviews.submit_review(engine, logged.prediction_id, "Dr A", agrees, None if agrees else truth)
        import hashlib

        kept += is_comparison_case(hashlib.sha256(data).hexdigest())
    figures = comparison.compare_on_reviewed(engine, a, b, bootstrap=50)
    assert figures["n"] == kept > 0
    # Same weights: identical ranking, so the paired ROC-AUC difference is zero.
    assert figures["difference_b_minus_a"]["roc_auc"]["difference"] == pytest.approx(0.0, abs=1e-9)
