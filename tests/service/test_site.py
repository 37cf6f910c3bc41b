"""Site adaptation through the store: resolved labels, reviewed cases, recalibration from reviews."""

from __future__ import annotations

import numpy as np
import pytest

from core.inference import Predictor
from db import repository
from db.engine import session_scope
from service import known_models, predictions, reviews, store
from service.site import score_reviewed_cases, site_performance
from tests.db.conftest import add_prediction
from tests.helpers import xray_like


def test_resolve_label_majority_and_ties():
    assert repository.resolve_label(["NORMAL", "NORMAL", "PNEUMONIA"]) == "NORMAL"
    assert repository.resolve_label(["NORMAL", "PNEUMONIA"]) == ""
    assert repository.resolve_label([]) == ""


def test_reviewed_cases_use_latest_calls_and_leave_ties_out(engine):
    agreed = add_prediction(engine, seed=1, p=0.9)  # model: PNEUMONIA
    changed = add_prediction(engine, seed=2, p=0.9)
    tied = add_prediction(engine, seed=3, p=0.2)  # model: NORMAL
    add_prediction(engine, seed=4, p=0.2)  # never reviewed
    reviews.submit_review(engine, agreed, "Dr A", True)
    reviews.submit_review(engine, changed, "Dr A", True)
    reviews.submit_review(engine, changed, "Dr A", False, "NORMAL")  # supersedes the agreement
    reviews.submit_review(engine, tied, "Dr A", True)
    reviews.submit_review(engine, tied, "Dr B", False, "PNEUMONIA")
    cases = reviews.reviewed_cases(engine)
    assert [(c.prediction_id, c.label) for c in cases] == [(agreed, "PNEUMONIA"), (changed, "NORMAL")]
    assert len(cases[1].review_ids) == 1  # only the latest review of Dr A counts
    assert reviews.reviewed_cases(engine, "0" * 64) == []  # another model version predicted none of them


@pytest.fixture()
def reviewed_site(engine, tiny_checkpoint):
    """60 images logged by the tiny model and reviewed; the truth follows its scores with a few errors."""
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    images = [xray_like(seed, seed % 2 == 1, 80) for seed in range(60)]
    margins = np.diff(predictor.logits([i.convert("RGB") for i in images]).numpy(), axis=1)[:, 0]
    truth = (margins > np.median(margins)).astype(int)
    truth[[3, 17, 41]] = 1 - truth[[3, 17, 41]]  # reviewers disagree with the ranking here
    for seed, (image, label) in enumerate(zip(images, truth, strict=True)):
        import io

        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        logged = predictions.predict_and_log(engine, predictor, buffer.getvalue(), f"case{seed}.png")
        called = logged.result.label
        true_label = "PNEUMONIA" if label else "NORMAL"
        reviews.submit_review(
            engine, logged.prediction_id, "Dr A", called == true_label, None if called == true_label else true_label
        )
    return predictor, truth


def test_scores_are_read_from_the_image_store_by_hash(engine, reviewed_site):
    predictor, truth = reviewed_site
    scores = score_reviewed_cases(engine, predictor)
    assert len(scores.cases) == 60 and not scores.skipped
    assert scores.labels.tolist() == truth.tolist()
    assert all(c.image_path.name.startswith(c.image_sha256) for c in scores.cases)
    figures = site_performance(engine, predictor, bootstrap=50)
    assert figures["n"] == 60 and figures["n_normal"] == int((truth == 0).sum())
    assert figures["operating_point"]["origin"] == "checkpoint"


def _calibrate(*extra: str) -> int:
    from training.calibrate import get_args_parser, main

    return main(get_args_parser().parse_args(["--from-reviews", "--device", "cpu", "--bootstrap", "50", *extra]))


def test_calibrate_from_reviews_refuses_too_few_cases(engine, reviewed_site, tiny_checkpoint, capsys):
    assert _calibrate("--checkpoint", str(tiny_checkpoint), "--min-cases", "40") == 2
    assert "need at least 40 resolved reviewed cases of each class" in capsys.readouterr().err
    with session_scope(engine) as session:
        assert repository.latest_threshold_change(session, reviewed_site[0].checkpoint_sha256) is None


def test_calibrate_from_reviews_saves_a_point_every_entry_point_uses(engine, reviewed_site, tiny_checkpoint, capsys):
    predictor, truth = reviewed_site
    # The default goal needs 45 reviewed positives for sensitivity >= 0.95 at 90 % confidence: no change.
    assert _calibrate("--checkpoint", str(tiny_checkpoint), "--min-cases", "10", "--dry-run") == 2
    positives, err = int(truth.sum()), capsys.readouterr().err
    assert err.startswith(f"error: no change: {positives} reviewed PNEUMONIA case(s)")
    assert f"review at least {45 - positives} more (45 in all)" in err
    sample = ("--threshold-goal", "sensitivity>=0.95")
    assert _calibrate("--checkpoint", str(tiny_checkpoint), "--min-cases", "10", *sample, "--dry-run") == 0
    assert "dry run" in capsys.readouterr().out
    with session_scope(engine) as session:
        assert repository.latest_threshold_change(session, predictor.checkpoint_sha256) is None

    # The checkpoint's point calls nothing PNEUMONIA here: a proposal that meets the goal is better, and saved.
    assert _calibrate("--checkpoint", str(tiny_checkpoint), "--min-cases", "10", *sample, "--by", "Dr Lead") == 0
    out = capsys.readouterr().out
    assert "before (" in out and "after, 5-fold cross-validation" in out and "saved as threshold change #1" in out
    # Proposing again from that point adds nothing with confidence: refused unless overridden, then recorded.
    assert _calibrate("--checkpoint", str(tiny_checkpoint), "--min-cases", "10", *sample, "--by", "Dr Lead") == 2
    assert "error: refused: the point in force meets the goal already" in capsys.readouterr().err
    assert (
        _calibrate("--checkpoint", str(tiny_checkpoint), "--min-cases", "10", *sample, "--by", "X", "--override") == 0
    )
    assert "saved as threshold change #2" in capsys.readouterr().out
    with session_scope(engine) as session:
        change = repository.latest_threshold_change(session, predictor.checkpoint_sha256)
        assert change.changed_by == "X" and change.temperature is not None and change.bias is not None
        assert len(change.metrics["review_ids"]) == 60 and change.metrics["n_cases"] == 60
        assert {"before", "after_cross_validated", "paired"} <= set(change.metrics)
        assert change.metrics["override"] and change.reason.startswith("OVERRIDE (the point in force meets the goal")
        saved = (change.threshold, change.temperature, change.bias)
    in_force = known_models.predictor_in_force(engine, predictor)
    assert (in_force.point.threshold, in_force.point.temperature, in_force.point.bias) == pytest.approx(saved)
    assert in_force.point.origin == "database"


def test_evaluate_from_reviews_prints_the_site_figures_as_json(engine, reviewed_site, tiny_checkpoint, tmp_path):
    import json

    from tests.helpers import run_main

    out = tmp_path / "site.json"
    result = run_main(
        "training.evaluate",
        "--from-reviews",
        "--checkpoint",
        tiny_checkpoint,
        "--bootstrap",
        "50",
        "--device",
        "cpu",
        "--output",
        out,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures == json.loads(out.read_text())
    assert figures["n"] == 60 and figures["model_version"].startswith("resnet18@")
    assert set(figures["confidence_intervals"]) == {"accuracy", "sensitivity", "specificity", "roc_auc", "ece"}
    assert figures["operating_point"]["origin"] == "checkpoint"


def test_cases_chosen_by_the_uncertainty_queue_are_left_out_and_said_so(engine, reviewed_site):
    predictor, _ = reviewed_site
    from db.engine import session_scope
    from db.models import Review

    with session_scope(engine) as session:  # ten cases came from the uncertainty queue
        for review in session.query(Review).filter(Review.prediction_id <= 10):
            review.selection = "queue"
    scores = score_reviewed_cases(engine, predictor)
    assert len(scores.cases) == 50 and scores.left_out_by_score == 10
    assert "10 chosen by the uncertainty queue left out" in scores.sample_note
    assert site_performance(engine, predictor, bootstrap=20)["n"] == 50
    # a second review of the same case drawn at random (audit) makes it a sample case again
    reviews.submit_review(engine, 1, "Dr B", True, selection="audit")
    assert score_reviewed_cases(engine, predictor).left_out_by_score == 9


def test_a_review_records_how_its_case_was_chosen(engine):
    from tests.db.conftest import add_prediction

    case = add_prediction(engine, seed=3)
    with pytest.raises(store.ValidationError, match="selection must be one of queue, audit, outside"):
        reviews.submit_review(engine, case, "Dr A", True, selection="by hand")
    reviews.submit_review(engine, case, "Dr A", True)
    reviews.submit_review(engine, case, "Dr B", True, selection="audit")
    with engine.connect() as connection:
        stored = [row[0] for row in connection.exec_driver_sql("SELECT selection FROM reviews ORDER BY id")]
    assert stored == ["outside", "audit"]
    from service.maintenance import verify_log

    assert verify_log(engine, files=False).ok  # the selection is part of the logged review
