"""Reader-study views: blind first read, the viewer, identity from sign-in, the training-data queue,
the Adjudication page and the Feedback page's reader figures and log verification."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from db import repository
from db.engine import init_db, make_engine, session_scope
from service import maintenance, reviews
from tests.helpers import xray_like
from tests.pages.conftest import APP, open_page

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "x" * 32,
    "client_id": "id",
    "client_secret": "secret",
    "server_metadata_url": "https://accounts.example.invalid/.well-known/openid-configuration",
}


def _engine():
    return init_db(make_engine())


def _xray_prediction(engine, seed=1, p=0.9, channel="dashboard", original_label=None):
    import io

    buffer = io.BytesIO()
    xray_like(seed, p > 0.5, 320).save(buffer, format="PNG")
    with session_scope(engine) as session:
        image = repository.store_image(session, buffer.getvalue(), f"xray{seed}.png", original_label)
        model = repository.get_or_create_model(session, "f" * 64, "best_model.pth", "resnet18")
        label = "PNEUMONIA" if p >= 0.5 else "NORMAL"
        return repository.log_prediction(
            session, image=image, model=model, p_pneumonia=p, threshold=0.5, predicted_label=label, channel=channel
        ).id


def _texts(at):
    return " ".join(
        [s.value for s in at.subheader]
        + [m.value for m in at.markdown]
        + [c.value for c in at.caption]
        + [i.value for i in at.info]
    )


def test_blind_read_hides_the_model_until_the_reviewer_calls(app_env):
    engine = _engine()
    case = _xray_prediction(engine, p=0.93)
    with session_scope(engine) as session:
        repository.add_review(session, case, "Dr Other", True, notes="other reviewer's note")
    at = open_page("review")
    at.toggle(key="blind_read").set_value(True).run()
    at.text_input(key="reviewer_name_box").input("Dr Blind").run()
    shown = _texts(at)
    assert f"Case #{case}: your read first" in shown
    assert "model says" not in shown and "0.93" not in shown and "PNEUMONIA:" not in shown
    assert not at.dataframe  # other reviewers' calls hidden too
    assert not [r for r in at.radio if r.key == f"review-{case}_heat"]  # no heat map before the call
    assert "xray1.png" not in [t.value for t in at.text]  # the file name can give the answer away
    assert [b.label for b in at.button if b.key in ("blind_normal", "blind_pneumonia")] == ["NORMAL", "PNEUMONIA"]
    at.button(key="blind_normal").click().run()
    assert not at.exception
    shown = _texts(at)
    assert f"Case #{case}: model says PNEUMONIA" in shown
    assert "xray1.png" in [t.value for t in at.text]  # revealed with the model's output
    assert "P(PNEUMONIA) 0.930 is at or above the threshold 0.500: PNEUMONIA" in [m.value for m in at.markdown]
    assert "Your unaided call: NORMAL (high)" in shown
    at.button(key="agree").click().run()  # changes their mind after seeing the AI
    with engine.connect() as connection:
        blind = connection.execute(text("SELECT id, reviewer, label FROM blind_reads")).one()
        review = connection.execute(
            text("SELECT reviewer, agrees, blind_read_id, reviewer_verified FROM reviews WHERE reviewer = 'Dr Blind'")
        ).one()
    assert tuple(blind)[1:] == ("Dr Blind", "NORMAL")
    assert tuple(review) == ("Dr Blind", True, blind[0], False)


def test_blind_read_needs_a_name_first(app_env):
    engine = _engine()
    _xray_prediction(engine)
    at = open_page("review")
    at.toggle(key="blind_read").set_value(True).run()
    assert any("Type your name to start the blind read" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "blind_normal"]


def test_viewer_shows_the_stored_resolution_with_window_level_and_heat_map(app_env):
    engine = _engine()
    first = _xray_prediction(engine)
    second = _xray_prediction(engine, seed=2, p=0.2)
    at = open_page("review", prediction=str(first))
    assert not at.exception
    assert any("320 × 320 px" in c.value for c in at.caption)
    at.slider(key=f"review-{first}_window").set_value(64).run()
    at.slider(key=f"review-{first}_level").set_value(100).run()
    assert not at.exception
    at.radio(key=f"review-{first}_heat").set_value("side by side").run()
    assert any(c.value.startswith("Grad-CAM colours: red and yellow") for c in at.caption)  # the heat map's legend
    assert not at.exception and at.slider(key=f"review-{first}_opacity").value == 0.4
    at.radio(key=f"review-{first}_heat").set_value("overlay").run()
    assert not at.exception
    at.button(key="skip").click().run()  # the next case starts from the default window / level
    shown = next(s.value for s in at.subheader if "model says" in s.value)
    assert shown == f"Case #{second}: model says NORMAL"
    assert (
        at.slider(key=f"review-{second}_window").value == 256 and at.slider(key=f"review-{second}_level").value == 128
    )


def test_signed_in_identity_is_used_and_cannot_be_typed(app_env):
    from streamlit.testing.v1 import AppTest

    engine = _engine()
    case = _xray_prediction(engine, p=0.2)
    at = AppTest.from_file(APP, default_timeout=180)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": "reader@hospital.org", "name": "Reader"}
    at.run()
    at.switch_page("pages/review.py").run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "reviewer_name_box"]
    assert any("Reviewing as reader@hospital.org (signed in)" in c.value for c in at.caption)
    at.button(key="disagree").click().run()
    with engine.connect() as connection:
        row = connection.execute(text("SELECT reviewer, reviewer_verified, corrected_label FROM reviews")).one()
    assert tuple(row) == ("reader@hospital.org", True, "PNEUMONIA")
    assert case == 1


def test_training_data_queue_shows_doubted_labels_only(app_env):
    engine = _engine()
    _xray_prediction(engine, seed=1, p=0.9)
    doubted = _xray_prediction(engine, seed=2, p=0.95, channel="training_data", original_label="NORMAL")
    with session_scope(engine) as session:
        prediction = repository.get_prediction(session, doubted)
        repository.add_label_issue(session, prediction, "NORMAL", 0.02, 1, "test")
    at = open_page("review")
    assert all(f"Case #{doubted}" not in s.value for s in at.subheader)
    at.radio(key="queue_kind").set_value("Training data").run()
    assert at.subheader[0].value == f"Case #{doubted}: model says PNEUMONIA"
    assert any("Training image labelled NORMAL; suspected label error #1" in w.value for w in at.warning)


def test_next_case_skips_without_saving(app_env):
    engine = _engine()
    first = _xray_prediction(engine, seed=1, p=0.55)
    second = _xray_prediction(engine, seed=2, p=0.95)
    at = open_page("review")
    assert at.subheader[0].value.startswith(f"Case #{first}:")
    at.button(key="skip").click().run()
    assert at.subheader[0].value.startswith(f"Case #{second}:")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reviews")).scalar() == 0


@pytest.fixture()
def disagreement(app_env, monkeypatch):
    monkeypatch.setenv("PNEUMONIA_ADJUDICATORS", "Dr Lead")
    engine = _engine()
    case = _xray_prediction(engine, p=0.9)
    reviews.submit_review(engine, case, "Dr A", True, notes="<b>lobar</b>")
    reviews.submit_review(engine, case, "Dr B", False, "NORMAL", notes="clear")
    return engine, case


def test_adjudication_page_is_read_only_for_others(disagreement):
    at = open_page("adjudication")
    assert not at.exception
    assert any("Only adjudicators" in w.value for w in at.warning)
    calls = at.dataframe[0].value
    assert set(calls["reviewer"]) == {"Dr A (unverified)", "Dr B (unverified)"}
    assert "<b>lobar</b>" in set(calls["notes"])
    assert any(t.value.startswith("Resolved label: none yet (") for t in at.text)  # the label, then why
    assert at.button[-1].disabled  # the form's submit button


def test_a_typed_adjudicator_name_needs_sign_in(disagreement):
    at = open_page("adjudication")
    at.text_input(key="reviewer_name_box").input("Dr Lead").run()
    assert any("signed in" in w.value for w in at.warning)
    assert at.button[-1].disabled  # typing a listed name is not enough without sign-in


def test_a_refused_submission_keeps_the_chosen_label_and_none_is_preselected(disagreement, monkeypatch):
    monkeypatch.setenv("PNEUMONIA_TYPED_ADJUDICATORS", "1")
    engine, _ = disagreement
    at = open_page("adjudication")
    at.text_input(key="reviewer_name_box").input("Dr Lead").run()
    assert at.radio(key="final_label").value is None  # nothing chosen for the adjudicator
    at.text_area(key="adjudication_reason").input("consolidation right lower lobe")
    at.button[-1].click().run()
    assert any(e.value == "Not saved: choose the final label." for e in at.error)
    at.radio(key="final_label").set_value("PNEUMONIA")
    at.text_area(key="adjudication_reason").input("")
    at.button[-1].click().run()  # refused: the reason is empty
    assert any(e.value == "Not saved: the input was refused." for e in at.error)
    assert at.radio(key="final_label").value == "PNEUMONIA"  # the choice survives the refusal
    at.text_area(key="adjudication_reason").input("consolidation right lower lobe")
    at.button[-1].click().run()
    assert any("Final label of image #1 recorded: PNEUMONIA." in s.value for s in at.success)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT label, reason FROM adjudications")).all()
    assert [tuple(row) for row in stored] == [("PNEUMONIA", "consolidation right lower lobe")]


def test_an_adjudicator_records_the_final_label(disagreement, monkeypatch):
    monkeypatch.setenv("PNEUMONIA_TYPED_ADJUDICATORS", "1")
    engine, _ = disagreement
    at = open_page("adjudication")
    at.text_input(key="reviewer_name_box").input("Dr Lead").run()
    at.radio(key="final_label").set_value("NORMAL")
    at.text_area(key="adjudication_reason").input("no consolidation on the lateral film")
    at.button[-1].click().run()
    assert not at.exception
    assert any("Final label of image #1 recorded: NORMAL." in s.value for s in at.success)
    assert any("No disagreement waits" in i.value for i in at.info)
    (case,) = reviews.reviewed_cases(engine)
    assert case.label == "NORMAL"
    review = open_page("review", prediction=str(case.prediction_id))
    assert any(
        t.value.startswith("Resolved label: NORMAL (adjudicated by Dr Lead (unverified) on ")
        and t.value.endswith("no consolidation on the lateral film)")
        for t in review.text
    )


def test_feedback_shows_reader_figures_and_a_broken_log(disagreement, app_env):
    engine, case = disagreement
    reviews.submit_review(engine, case, "Dr C", True)
    reviews.submit_review(engine, case, "Dr D", True)
    at = open_page("feedback")
    assert not at.exception
    readers = next(d.value for d in at.dataframe if "mode" in d.value.columns)
    assert set(readers["reader"]) == {f"Dr {x} (unverified)" for x in "ABCD"}
    assert any("log verified up to entry 6 of 6" in s.value for s in at.success)
    head = maintenance.verify_log(engine).head_hash
    assert [c.value for c in at.code] == [head]  # the head to keep, shown whole
    with sqlite3.connect(app_env / "reviews.db") as connection:  # notes that a spreadsheet would run
        connection.execute("UPDATE reviews SET notes = '=HYPERLINK(\"http://x\")' WHERE agrees = 0")
    at = open_page("feedback")
    shown = next(d.value for d in at.dataframe if "notes" in d.value.columns)
    assert not any(str(note).startswith(("=", "+", "-", "@")) for note in shown["notes"])
    assert '\'=HYPERLINK("http://x")' in set(shown["notes"])
    with sqlite3.connect(app_env / "reviews.db") as connection:
        connection.execute("UPDATE reviews SET notes = 'rewritten' WHERE reviewer = 'Dr B'")
    at = open_page("feedback")
    assert any(e.value.startswith("log broken at entry") and "was changed" in e.value for e in at.error)
