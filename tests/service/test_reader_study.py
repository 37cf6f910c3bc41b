"""Reader study: blind reads, adjudication (queue, role, provenance), reader performance."""

import csv
import io

import pytest

from db import repository
from db.engine import session_scope
from service import export, reviews, store
from service.reader_study import (
    Identity,
    adjudicate,
    adjudication_queue,
    blind_read_of,
    reader_performance,
    record_blind_read,
)
from tests.db.conftest import add_prediction

LEAD = Identity("lead@hospital.org", True)


@pytest.fixture(autouse=True)
def _roles(monkeypatch):
    monkeypatch.setenv("PNEUMONIA_ADJUDICATORS", "Lead@Hospital.org, other@hospital.org")
    monkeypatch.delenv("PNEUMONIA_ADJUDICATE_MODEL_DISAGREEMENT", raising=False)


def _image_id(engine, prediction_id):
    with session_scope(engine) as session:
        return repository.get_prediction(session, prediction_id).image_id


def test_a_blind_read_is_stored_before_and_linked_to_the_aided_review(engine):
    case = add_prediction(engine, seed=1, p=0.9)
    reader = Identity("Dr A", False)
    assert blind_read_of(engine, case, "Dr A") is None
    blind = record_blind_read(engine, case, reader, "NORMAL", "low")
    stored = blind_read_of(engine, case, "Dr A")
    assert stored is not None and (stored.id, stored.label, stored.confidence) == (blind.id, "NORMAL", "low")
    review = reviews.submit_review(engine, case, "Dr A", True, blind_read_id=blind.id)  # changed their mind
    assert review.blind_call == "NORMAL" and review.call == "PNEUMONIA"
    assert review.created_at >= blind.created_at
    with pytest.raises(store.ValidationError, match="does not belong"):
        reviews.submit_review(engine, case, "Dr B", True, blind_read_id=blind.id)
    with pytest.raises(store.ValidationError, match="NORMAL or PNEUMONIA"):
        record_blind_read(engine, case, reader, "maybe", "low")


def test_disagreeing_reviewers_queue_a_case_until_an_adjudicator_settles_it(engine):
    split = add_prediction(engine, seed=1, p=0.9)
    agreed = add_prediction(engine, seed=2, p=0.9)
    reviews.submit_review(engine, split, "A", True, notes="lobar opacity")
    reviews.submit_review(engine, split, "B", False, "NORMAL", notes="<i>clear</i>")
    reviews.submit_review(engine, agreed, "A", False, "NORMAL")
    reviews.submit_review(engine, agreed, "B", False, "NORMAL")

    (queued,) = adjudication_queue(engine)
    assert queued.prediction_id == split and queued.why == "reviewers disagree"
    assert {(c.reviewer, c.call, c.notes) for c in queued.calls} == {
        ("A (unverified)", "PNEUMONIA", "lobar opacity"),
        ("B (unverified)", "NORMAL", "<i>clear</i>"),
    }
    assert len(adjudication_queue(engine, include_model_disagreement=True)) == 2

    with pytest.raises(store.ValidationError, match="not an adjudicator"):
        adjudicate(engine, queued.image_id, Identity("A", False), "NORMAL", "I say so")
    typed = Identity("lead@hospital.org", False)  # a listed name, typed rather than signed in
    with pytest.raises(store.ValidationError, match="adjudication needs sign-in"):
        adjudicate(engine, queued.image_id, typed, "NORMAL", "I say so")
    with pytest.raises(store.ValidationError, match="reason must not be empty"):
        adjudicate(engine, queued.image_id, LEAD, "NORMAL", "  ")
    adjudicate(engine, queued.image_id, LEAD, "NORMAL", "lateral view clear")
    assert adjudication_queue(engine) == []

    reviews.submit_review(engine, split, "D", False, "NORMAL")  # a later call that agrees: still settled
    assert adjudication_queue(engine) == []
    assert reviews.load_case(engine, split).resolution.startswith("Resolved label: NORMAL (adjudicated by")

    reviews.submit_review(engine, split, "C", True)  # a new call against the final label re-opens the case
    (reopened,) = adjudication_queue(engine)
    assert reopened.prediction_id == split and reopened.why == "reviewers disagree"
    # ... and until it is adjudicated again, no page, export or site figure uses the old label
    shown = reviews.load_case(engine, split).resolution
    assert shown.startswith("Resolved label: none yet (re-opened: C (unverified) called it otherwise after NORMAL")
    assert split not in {c.prediction_id for c in reviews.reviewed_cases(engine)}
    buffer = io.StringIO()
    export.write_relabel_export(engine, buffer)
    row = next(r for r in csv.DictReader(io.StringIO(buffer.getvalue())) if r["resolution"] == "reopened")
    assert row["resolved_label"] == ""
    adjudicate(engine, queued.image_id, LEAD, "PNEUMONIA", "second look: consolidation")
    assert adjudication_queue(engine) == []
    assert reviews.load_case(engine, split).resolution.startswith("Resolved label: PNEUMONIA (adjudicated by")


def test_the_adjudicated_label_wins_and_its_provenance_is_exported(engine, tmp_path):
    case = add_prediction(engine, seed=1, p=0.9, name="case.png", original_label="PNEUMONIA")
    for name in ("A", "B"):
        reviews.submit_review(engine, case, name, True)
    reviews.submit_review(engine, case, "C", False, "NORMAL")
    (before,) = reviews.reviewed_cases(engine)
    assert before.label == "PNEUMONIA"
    adjudicate(engine, _image_id(engine, case), LEAD, "NORMAL", "CT next day clear")
    (after,) = reviews.reviewed_cases(engine)
    assert after.label == "NORMAL"
    export.write_relabel_export(engine, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["resolved_label"] == "NORMAL" and row["resolution"] == "adjudicated"
    assert row["provenance"].startswith("adjudicated by lead@hospital.org on ")
    assert row["provenance"].endswith("UTC: CT next day clear")


def test_majority_provenance_names_the_voters_and_marks_typed_names(engine, tmp_path):
    case = add_prediction(engine, seed=1, p=0.9)
    reviews.submit_review(engine, case, "a@x.org", True, reviewer_verified=True)
    reviews.submit_review(engine, case, "B", True)
    reviews.submit_review(engine, case, "C", False, "NORMAL")
    export.write_relabel_export(engine, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["provenance"] == "majority of B (unverified), a@x.org (2 of 3)"
    assert "a@x.org:PNEUMONIA" in row["reviewer_calls"] and "C (unverified):NORMAL" in row["reviewer_calls"]


def _truthful_study(engine):
    """Five cases (3 pneumonia, 2 normal, by the majority), three readers; A reads blind first."""
    truth = ["PNEUMONIA", "PNEUMONIA", "PNEUMONIA", "NORMAL", "NORMAL"]
    model_p = [0.9, 0.9, 0.2, 0.8, 0.1]  # the model misses case 3 and over-calls case 4
    cases = [add_prediction(engine, seed=i, p=p) for i, p in enumerate(model_p)]
    calls = {
        "A": ["PNEUMONIA", "NORMAL", "PNEUMONIA", "NORMAL", "NORMAL"],
        "B": truth,
        "C": truth,
    }
    a_blind = ["NORMAL", "NORMAL", "PNEUMONIA", "NORMAL", "PNEUMONIA"]
    for index, case in enumerate(cases):
        model = "PNEUMONIA" if model_p[index] >= 0.5 else "NORMAL"
        blind = record_blind_read(engine, case, Identity("A", False), a_blind[index], "medium")
        for name, labels in calls.items():
            agrees = labels[index] == model
            reviews.submit_review(
                engine,
                case,
                name,
                agrees,
                None if agrees else labels[index],
                blind_read_id=blind.id if name == "A" else None,
            )
    return cases


def test_reader_performance_scores_each_reader_against_the_others(engine):
    _truthful_study(engine)
    report = reader_performance(engine)
    rows = {(r.reader, r.mode): r for r in report.rows}
    final_a = rows[("A (unverified)", "final")]
    assert final_a.n == 5
    assert (final_a.sensitivity.count, final_a.sensitivity.total) == (2, 3)
    assert (final_a.specificity.count, final_a.specificity.total) == (2, 2)
    unaided = rows[("A (unverified)", "unaided")]
    assert (unaided.sensitivity.count, unaided.specificity.count) == (1, 1)
    assert rows[("A (unverified)", "aided")].n == 5
    assert (final_a.model_sensitivity.count, final_a.model_specificity.count) == (2, 1)
    assert ("B (unverified)", "unaided") not in rows
    kappas = {(p.first, p.second): p for p in report.pairs}
    assert kappas[("B (unverified)", "C (unverified)")].kappa == pytest.approx(1.0)
    assert kappas[("A (unverified)", "B (unverified)")].agreement == pytest.approx(0.8)
    assert report.fleiss.cases == 5 and report.fleiss.readers_per_case == 3
    assert 0 < report.fleiss.kappa < 1
    assert report.as_dict()["readers"][0]["sensitivity"].startswith("0.667 (")


def test_an_adjudicator_is_not_scored_on_cases_they_settled(engine):
    case = add_prediction(engine, seed=1, p=0.9)
    reviews.submit_review(engine, case, "lead@hospital.org", True, reviewer_verified=True)
    reviews.submit_review(engine, case, "B", False, "NORMAL")
    adjudicate(engine, _image_id(engine, case), LEAD, "PNEUMONIA", "clear consolidation")
    readers = {r.reader: r for r in reader_performance(engine).rows if r.mode == "final"}
    assert "lead@hospital.org" not in readers
    assert readers["B (unverified)"].sensitivity.count == 0 and readers["B (unverified)"].n == 1


def test_db_summary_prints_reader_performance(engine):
    from tests.helpers import run_main

    _truthful_study(engine)
    result = run_main("db", "summary")
    assert result.returncode == 0, result.stderr
    import json

    summary = json.loads(result.stdout)
    readers = {(r["reader"], r["mode"]) for r in summary["reader_performance"]["readers"]}
    assert ("A (unverified)", "unaided") in readers and ("C (unverified)", "final") in readers
    assert summary["reader_performance"]["fleiss_kappa"]["cases"] == 5
