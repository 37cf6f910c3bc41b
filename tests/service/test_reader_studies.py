"""Named reader studies: frozen stratified case sets, per-reader order, the washout, ratings and the report."""

from datetime import UTC, datetime, timedelta

import pytest

from db import repository
from db.engine import session_scope
from service import reader_studies, study_report
from service.store import ValidationError
from tests.db.conftest import add_prediction
from tests.helpers import run_main


def _adjudicated(engine, count=12, normal_every=3):
    ids = []
    for seed in range(count):
        label = "NORMAL" if seed % normal_every == 0 else "PNEUMONIA"
        prediction = add_prediction(engine, seed=seed, p=0.05 + 0.9 * seed / count)
        with session_scope(engine) as session:
            image_id = repository.get_prediction(session, prediction).image_id
            repository.add_adjudication(session, image_id, "Dr Lead", label, "consensus")
        ids.append(prediction)
    return ids


def test_a_study_freezes_a_stratified_draw_and_its_readers(engine):
    _adjudicated(engine)
    study = reader_studies.create_study(engine, "pilot", 9, ["Ana", "Ben", "Ana"], "Dr Lead", seed=1)
    assert study.cases == 9 and study.normal == 3 and study.pneumonia == 6  # the pool's 1 : 2
    assert study.readers == ["Ana", "Ben"] and study.washout_days == 28
    before = reader_studies.study_rows(engine, "pilot")
    _adjudicated_more = add_prediction(engine, seed=99, p=0.9)  # later cases never enter the study
    assert reader_studies.get_study(engine, "pilot").cases == 9 and before == []
    assert _adjudicated_more
    with pytest.raises(ValidationError, match="exists already"):
        reader_studies.create_study(engine, "pilot", 4, ["A", "B"], "Dr Lead")
    with pytest.raises(ValidationError, match="eligible"):
        reader_studies.create_study(engine, "too big", 50, ["A", "B"], "Dr Lead")
    with pytest.raises(ValidationError, match="two readers"):
        reader_studies.create_study(engine, "alone", 4, ["A"], "Dr Lead")


def test_each_reader_reads_unaided_first_in_their_own_order(engine):
    _adjudicated(engine)
    reader_studies.create_study(engine, "order", 6, ["Ana", "Ben"], "Dr Lead", seed=3)
    first = reader_studies.next_read(engine, "order", "Ana")
    assert first.modality == "unaided" and first.done == 0 and first.total == 12
    orders = {}
    for reader in ("Ana", "Ben"):
        seen = []
        for _ in range(6):
            step = reader_studies.next_read(engine, "order", reader)
            assert step.modality == "unaided"
            seen.append(step.case.case_id)
            reader_studies.record_read(engine, "order", reader, step.case.case_id, "unaided", 3)
        orders[reader] = seen
    assert sorted(orders["Ana"]) == sorted(orders["Ben"]) and orders["Ana"] != orders["Ben"]
    with pytest.raises(ValidationError, match="read unaided already"):
        reader_studies.record_read(engine, "order", "Ana", orders["Ana"][0], "unaided", 4)
    with pytest.raises(ValidationError, match="not a reader"):
        reader_studies.next_read(engine, "order", "Eve")


def test_the_washout_is_enforced_and_an_override_needs_a_reason_and_is_logged(engine):
    from sqlalchemy import select

    from db.models import AuditEntry

    _adjudicated(engine)
    reader_studies.create_study(engine, "washout", 4, ["Ana", "Ben"], "Dr Lead", washout_days=28, seed=2)
    start = datetime.now(UTC)
    step = reader_studies.next_read(engine, "washout", "Ana")
    with pytest.raises(ValidationError, match="after every unaided read"):
        reader_studies.record_read(engine, "washout", "Ana", step.case.case_id, "aided", 4)
    for _ in range(4):
        step = reader_studies.next_read(engine, "washout", "Ana", now=start)
        reader_studies.record_read(engine, "washout", "Ana", step.case.case_id, "unaided", 2, now=start)
    waiting = reader_studies.next_read(engine, "washout", "Ana", now=start + timedelta(days=3))
    assert waiting.modality == "aided" and waiting.washout_ends is not None
    assert waiting.washout_ends - start >= timedelta(days=28) - timedelta(seconds=5)
    with pytest.raises(ValidationError, match="washout lasts until"):
        reader_studies.record_read(engine, "washout", "Ana", waiting.case.case_id, "aided", 4, now=start)
    reader_studies.record_read(
        engine, "washout", "Ana", waiting.case.case_id, "aided", 4, "reader leaves the hospital", now=start
    )
    assert reader_studies.progress(engine, "washout")[0].overrides == 1
    with engine.connect() as connection:
        actions = connection.execute(select(AuditEntry.action)).scalars().all()
    assert "washout_override" in actions and "create_study" in actions
    later = reader_studies.next_read(engine, "washout", "Ana", now=start + timedelta(days=29))
    assert later.washout_ends is None
    reader_studies.record_read(engine, "washout", "Ana", later.case.case_id, "aided", 5, now=start + timedelta(days=29))


def _complete(engine, name, readers=("Ana", "Ben", "Cy")):
    import numpy as np

    from db.models import StudyCase

    with session_scope(engine) as session:
        truth = {c.id: c.reference_label == "PNEUMONIA" for c in session.query(StudyCase).all()}
    start = datetime.now(UTC) - timedelta(days=60)
    for offset, reader in enumerate(readers):
        rng = np.random.default_rng(offset)
        for modality, when, noise in (("unaided", start, 1.4), ("aided", start + timedelta(days=30), 0.8)):
            while (step := reader_studies.next_read(engine, name, reader, now=when)).modality == modality:
                base = 4.0 if truth[step.case.case_id] else 2.0  # aided reads follow the truth more closely
                rating = int(np.clip(round(base + rng.normal(0, noise)), 1, 5))
                reader_studies.record_read(engine, name, reader, step.case.case_id, modality, rating, now=when)


def test_ratings_feed_the_analysis_and_the_report(engine, tmp_path):
    _adjudicated(engine, count=16, normal_every=2)
    reader_studies.create_study(engine, "full", 12, ["Ana", "Ben", "Cy"], "Dr <b>Lead</b>", seed=5)
    with pytest.raises(ValidationError, match="not complete"):
        reader_studies.study_ratings(engine, "full")
    _complete(engine, "full")
    ratings = reader_studies.study_ratings(engine, "full")
    assert ratings.modalities == ["unaided", "aided"] and ratings.values.shape == (2, 3, 12)
    report = study_report.build_report(engine, "full")
    assert report["design"]["cases"] == 12 and report["checklist"]["missing_reads"] == 0
    first = report["results"]["auc"]["comparisons"][0]
    assert first["method"] == "OR RRRC" and first["modalities"] == ["unaided", "aided"]
    assert set(report["roc"]["readers"]) == {"Ana", "Ben", "Cy"} and report["roc"]["ai"][0] == [0.0, 0.0]
    markdown = study_report.report_markdown(report)
    assert "| auc | unaided - aided (OR RRRC) |" in markdown
    page = study_report.report_html(report)
    assert page.count("<svg") == 3 and "<script" not in page
    result = run_main("training.mrmc", "--study", "full", "--json")
    assert result.returncode == 0, result.stderr
    assert '"OR RRRC"' in result.stdout


def test_roc_points_run_from_origin_to_one():
    assert study_report.roc_points([0, 1, 1, 0], [1, 3, 2, 2]) == [[0.0, 0.0], [0.0, 0.5], [0.5, 1.0], [1.0, 1.0]]


def test_a_flat_binary_endpoint_is_reported_not_testable_while_the_auc_stands(engine):
    _adjudicated(engine, count=8, normal_every=2)
    reader_studies.create_study(engine, "tiny", 4, ["Ana", "Ben"], "Dr Lead", washout_days=0, seed=1)
    with session_scope(engine) as session:
        from db.models import StudyCase

        truth = {c.id: c.reference_label == "PNEUMONIA" for c in session.query(StudyCase).all()}
    for offset, reader in enumerate(("Ana", "Ben")):
        for _ in range(8):
            step = reader_studies.next_read(engine, "tiny", reader)
            high, spread = truth[step.case.case_id], (step.case.position + offset) % 2
            if step.modality == "unaided" and (step.case.position + offset) % 3 == 0:
                high = not high  # an unaided miss
            rating = 4 + spread if high else 1 + spread
            reader_studies.record_read(engine, "tiny", reader, step.case.case_id, step.modality, rating)
    report = study_report.build_report(engine, "tiny")
    assert report["results"]["auc"]["comparisons"]
    flat = [e for e, r in report["results"].items() if "not_testable" in r]
    assert flat and all("variance" in report["results"][e]["not_testable"] for e in flat)
    assert all(f"{e}: not testable" in study_report.report_markdown(report) for e in flat)
