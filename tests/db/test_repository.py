import json
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import func, select

from db import repository
from db.engine import session_scope
from db.models import Image, Review
from db.repository import QueueFilters, ValidationError
from tests.db.conftest import add_prediction, png_bytes


def test_same_upload_twice_is_one_image(engine, data_dir):
    first = add_prediction(engine, seed=1)
    second = add_prediction(engine, seed=1, name="renamed.png")
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(Image.id))) == 1
        p1, p2 = repository.get_prediction(session, first), repository.get_prediction(session, second)
        assert p1.image_id == p2.image_id and p1.id != p2.id
    assert len(list((data_dir / "images").rglob("*.png"))) == 1


def test_stored_path_comes_from_the_hash_not_the_name(engine, data_dir):
    with session_scope(engine) as session:
        image = repository.store_image(session, png_bytes(2), "../../../../etc/evil.png")
        path = repository.image_path(image)
    assert path.resolve().is_relative_to((data_dir / "images").resolve())
    assert image.sha256 in path.name and image.file_name == "evil.png"
    assert path.read_bytes() == png_bytes(2)


def test_review_history_supersedes_without_overwriting(engine):
    prediction_id = add_prediction(engine, p=0.8)
    with session_scope(engine) as session:
        first = repository.add_review(session, prediction_id, "Dr A", agrees=True)
    with session_scope(engine) as session:
        second = repository.add_review(
            session,
            prediction_id,
            "Dr A",
            agrees=False,
            corrected_label="normal",
            confidence="unsure",
            notes="<script>alert(1)</script>",
        )
        repository.add_review(session, prediction_id, "Dr B", agrees=True, confidence="medium")
    with session_scope(engine) as session:
        history = repository.review_history(session, prediction_id)
        assert [r.reviewer for r in history] == ["Dr A", "Dr A", "Dr B"]
        assert history[0].agrees and history[1].supersedes_id == first.id
        assert history[1].notes == "<script>alert(1)</script>"  # stored as given
        assert history[1].corrected_label == "NORMAL"
        current = repository.current_reviews(session)
        assert sorted(r.id for r in current) == sorted([second.id, history[2].id])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prediction_id": 999}, "no prediction"),
        ({"reviewer": "   "}, "reviewer name"),
        ({"agrees": False, "corrected_label": "COVID"}, "NORMAL or PNEUMONIA"),
        ({"agrees": False, "corrected_label": "PNEUMONIA"}, "different from the model"),
        ({"notes": "x" * 5001}, "limit"),
        ({"confidence": "very"}, "confidence"),
    ],
)
def test_bad_reviews_write_nothing(engine, kwargs, message):
    prediction_id = add_prediction(engine, p=0.9)
    arguments = {"prediction_id": prediction_id, "reviewer": "Dr A", "agrees": True, **kwargs}
    with pytest.raises(ValidationError, match=message), session_scope(engine) as session:
        repository.add_review(session, **arguments)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(Review.id))) == 0


def test_queue_unreviewed_first_then_most_uncertain(engine):
    ids = {p: add_prediction(engine, seed=i, p=p) for i, p in enumerate([0.95, 0.52, 0.1, 0.45, 0.7])}
    with session_scope(engine) as session:
        repository.add_review(session, ids[0.52], "Dr A", agrees=True)
    with session_scope(engine) as session:
        queue = [p.p_pneumonia for p in repository.review_queue(session)]
        assert queue == [0.45, 0.7, 0.1, 0.95, 0.52]
        assert [p.p_pneumonia for p in repository.review_queue(session, QueueFilters(reviewer="Dr A"))] == [
            0.45,
            0.7,
            0.1,
            0.95,
        ]
        assert {
            p.predicted_label for p in repository.review_queue(session, QueueFilters(predicted_label="normal"))
        } == {"NORMAL"}
        assert len(repository.review_queue(session, QueueFilters(include_reviewed=False))) == 4
        future = datetime.now(UTC) + timedelta(days=1)
        assert repository.review_queue(session, QueueFilters(since=future)) == []
        assert repository.review_queue(session, QueueFilters(model_id=12345)) == []


def test_summary_counts_and_kappa(engine):
    calls = [(0.9, True), (0.8, False), (0.2, True), (0.1, False), (0.7, True)]
    for i, (p, agree) in enumerate(calls):
        prediction_id = add_prediction(engine, seed=i, p=p)
        with session_scope(engine) as session:
            label = None if agree else ("NORMAL" if p >= 0.5 else "PNEUMONIA")
            repository.add_review(session, prediction_id, "Dr A" if i % 2 else "Dr B", agree, label)
    with session_scope(engine) as session:
        summary = repository.feedback_summary(session)
        assert summary["reviews"] == 5 and summary["disagreements"] == 2
        assert summary["per_reviewer"] == {
            "Dr A (unverified)": {"reviews": 2, "disagreements": 2},
            "Dr B (unverified)": {"reviews": 3, "disagreements": 0},
        }
        model = ["PNEUMONIA", "PNEUMONIA", "NORMAL", "NORMAL", "PNEUMONIA"]
        human = ["PNEUMONIA", "NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA"]
        assert summary["kappa"] == pytest.approx(cohen_kappa_score(model, human))
        assert len(repository.disagreements(session)) == 2


def test_threshold_changes_are_logged(engine):
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, "e" * 64, "m.pth", "resnet18")
        assert repository.latest_threshold_change(session, "e" * 64) is None
        repository.record_threshold_change(session, model, 0.3, "Dr A", {"sensitivity": 0.97})
        repository.record_threshold_change(session, model, 0.4, "Dr B", {"sensitivity": 0.95}, "fewer FPs")
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, "e" * 64, "m.pth", "resnet18")
        assert repository.latest_threshold_change(session, "e" * 64).threshold == 0.4
        history = repository.threshold_history(session, model)
        assert [(h.changed_by, h.metrics["sensitivity"]) for h in history] == [("Dr B", 0.95), ("Dr A", 0.97)]
    with pytest.raises(ValidationError), session_scope(engine) as session:
        repository.record_threshold_change(session, model, 1.5, "Dr A", {})
    # a NaN threshold or a zero temperature is refused, not stored
    with pytest.raises(ValidationError), session_scope(engine) as session:
        repository.record_threshold_change(session, model, float("nan"), "Dr A", {})
    with pytest.raises(ValidationError), session_scope(engine) as session:
        repository.record_threshold_change(session, model, 0.5, "Dr A", {}, temperature=0.0)


def test_threshold_change_metrics_are_strict_json(engine):
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, "e" * 64, "m.pth", "resnet18")
        repository.record_threshold_change(
            session, model, 0.0, "Dr A", {"specificity": float("nan"), "nested": [float("inf"), 1.0]}
        )
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT metrics FROM threshold_changes").scalar()
    assert "NaN" not in stored and "Infinity" not in stored
    assert json.loads(stored) == {"specificity": None, "nested": [None, 1.0]}
