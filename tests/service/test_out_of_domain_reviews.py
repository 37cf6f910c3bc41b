"""'Not a usable chest X-ray' reviews and out-of-domain flags: out of every figure and training set, counted."""

import csv

from service import reviews
from service.export import feedback_view, write_relabel_export
from service.reviews import UNUSABLE
from tests.db.conftest import add_prediction


def test_a_not_usable_answer_takes_the_image_out_of_figures_and_training_and_is_counted(engine, tmp_path):
    usable = add_prediction(engine, seed=1, p=0.9)
    unusable = add_prediction(engine, seed=2, p=0.9)
    reviews.submit_review(engine, usable, "ana", True)
    reviews.submit_review(engine, unusable, "ana", False, UNUSABLE)
    reviews.submit_review(engine, unusable, "ben", False, UNUSABLE)
    reviews.submit_review(engine, unusable, "cy", True)  # outvoted: two say it is not usable
    cases = reviews.reviewed_cases(engine)
    assert [c.prediction_id for c in cases] == [usable]
    summary = feedback_view(engine).summary
    assert summary["unusable"] == 1 and summary["reviews"] == 2  # the "not usable" answers are not scored
    out = tmp_path / "relabel.csv"
    write_relabel_export(engine, out)
    rows = {r["file_name"]: r for r in csv.DictReader(out.open())}
    assert rows["img2.png"]["resolution"] == "unusable" and rows["img2.png"]["resolved_label"] == ""
    assert "ana (unverified):UNUSABLE" in rows["img2.png"]["reviewer_calls"]
    assert rows["img1.png"]["resolved_label"] == "PNEUMONIA"
    case = reviews.load_case(engine, unusable)
    assert "not a usable chest X-ray" in case.resolution


def test_a_flagged_image_counts_only_once_a_reviewer_confirms_it(engine):
    flagged = add_prediction(engine, seed=3, p=0.9, out_of_domain=True, domain_score=5.0)
    reviews.submit_review(engine, flagged, "ana", True)
    assert reviews.reviewed_cases(engine) == []
    assert reviews.load_case(engine, flagged).out_of_domain is True
    reviews.submit_review(engine, flagged, "ben", True, domain_confirmed=True)
    assert [c.prediction_id for c in reviews.reviewed_cases(engine)] == [flagged]


def test_a_not_usable_answer_never_records_a_confirmation(engine):
    flagged = add_prediction(engine, seed=4, p=0.2, out_of_domain=True, domain_score=4.0)
    view = reviews.submit_review(engine, flagged, "ana", False, UNUSABLE, domain_confirmed=True)
    assert view.call == UNUSABLE
    assert reviews.reviewed_cases(engine) == []
