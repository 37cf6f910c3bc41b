import pytest
from sqlalchemy import text

from db import repository
from db.engine import make_engine, session_scope
from tests.db.conftest import add_prediction
from tests.pages.conftest import open_page


def _engine():
    from db.engine import init_db

    return init_db(make_engine())


def test_empty_queue(app_env):
    at = open_page("review")
    assert not at.exception and any("Nothing to review" in i.value for i in at.info)


def test_most_uncertain_first_and_submit_moves_on(app_env):
    engine = _engine()
    sure = add_prediction(engine, seed=1, p=0.99)
    unsure = add_prediction(engine, seed=2, p=0.52)
    at = open_page("review")
    assert not at.exception
    assert at.subheader[0].value == f"Case #{unsure}: model says PNEUMONIA"
    at.text_input(key="reviewer_name_box").input("Dr <b>Who</b>").run()
    at.text_area(key="notes-0").input("<script>alert('x')</script> & notes")
    at.button(key="disagree").click().run()
    assert not at.exception and not at.error
    assert any("saved" in s.value for s in at.success)
    # The reviewer's name is remembered and the next case is shown.
    assert at.text_input(key="reviewer_name_box").value == "Dr <b>Who</b>"
    assert at.subheader[0].value == f"Case #{sure}: model says PNEUMONIA"
    assert at.text_area(key="notes-1").value == ""  # a new box: the last review's notes cannot carry over
    with engine.connect() as connection:
        row = connection.execute(text("SELECT reviewer, agrees, corrected_label, notes FROM reviews")).one()
    assert tuple(row) == ("Dr <b>Who</b>", False, "NORMAL", "<script>alert('x')</script> & notes")


def test_empty_reviewer_is_refused(app_env):
    engine = _engine()
    add_prediction(engine, p=0.6)
    at = open_page("review")
    at.button(key="agree").click().run()
    assert not at.exception and any("reviewer name must not be empty" in t.value for t in at.text)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reviews")).scalar() == 0


def test_link_opens_a_case_and_shows_history(app_env):
    engine = _engine()
    first = add_prediction(engine, seed=1, p=0.51)
    target = add_prediction(engine, seed=2, p=0.95)
    with session_scope(engine) as session:
        repository.add_review(session, target, "Dr A", True, notes="<i>looks fine</i>")
    at = open_page("review", prediction=str(target))
    assert not at.exception
    assert at.subheader[0].value == f"Case #{target}: model says PNEUMONIA"
    assert any(c.value.startswith(f"Prediction #{target}, opened from its link;") for c in at.caption)
    history = at.dataframe[0].value
    assert list(history["reviewer"]) == ["Dr A (unverified)"] and list(history["notes"]) == ["<i>looks fine</i>"]
    bad = open_page("review", prediction="abc")
    assert not bad.exception and any("No prediction" in w.value for w in bad.warning)
    assert bad.subheader[0].value == f"Case #{first}: model says PNEUMONIA"


def test_label_filter(app_env):
    engine = _engine()
    add_prediction(engine, seed=1, p=0.55)
    normal = add_prediction(engine, seed=2, p=0.2)
    at = open_page("review")
    at.selectbox(key="label_filter").set_value("NORMAL").run()
    assert at.subheader[0].value == f"Case #{normal}: model says NORMAL"


def test_model_and_date_filters(app_env):
    import datetime as dt

    engine = _engine()
    add_prediction(engine, seed=1, p=0.55)
    at = open_page("review")
    assert "resnet18@ffffffffffff" in at.selectbox(key="model_filter").options
    at.selectbox(key="model_filter").set_value("resnet18@ffffffffffff").run()
    assert at.subheader[0].value.startswith("Case #1")
    today = dt.date.today()
    at.date_input(key="until_filter").set_value(today + dt.timedelta(days=1)).run()
    assert at.subheader[0].value.startswith("Case #1")
    at.date_input(key="since_filter").set_value(today + dt.timedelta(days=1)).run()
    assert not at.exception and any("Nothing to review" in i.value for i in at.info)


def test_locked_database_says_so_and_saves_nothing(app_env, monkeypatch):
    import sqlite3

    monkeypatch.setenv("SQLITE_BUSY_TIMEOUT", "0.5")
    engine = _engine()
    add_prediction(engine, p=0.6)
    at = open_page("review")
    at.text_input(key="reviewer_name_box").input("Dr Lock").run()
    blocker = sqlite3.connect(app_env / "reviews.db", timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        at.button(key="agree").click().run()
    finally:
        blocker.rollback()
        blocker.close()
    assert not at.exception
    assert any("nothing was saved" in e.value for e in at.error)
    assert any("busy" in t.value or "locked" in t.value for t in at.text)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reviews")).scalar() == 0


def test_missing_database_is_created(app_env):
    assert not (app_env / "reviews.db").exists()
    at = open_page("review")
    assert not at.exception and (app_env / "reviews.db").is_file()


def test_hostile_names_and_query_values_are_plain_text(app_env):
    engine = _engine()
    name = "![t](https://example.invalid/x).png"
    add_prediction(engine, seed=1, p=0.6, name=name)
    at = open_page("review", prediction="[Session expired - log in](https://example.invalid)")
    assert not at.exception
    shown = [t.value for t in at.text]
    assert "x).png" in shown  # the stored display name: the last path part of the upload's name
    assert any(t.startswith("Requested: [Session expired") for t in shown)
    rendered = [m.value for m in at.markdown] + [w.value for w in at.warning] + [c.value for c in at.caption]
    assert not any("example.invalid" in value for value in rendered)


@pytest.mark.parametrize(("fraction", "expected"), [("0", "queue"), ("1", "audit")])
def test_audit_cases_are_mixed_in_and_each_review_records_its_selection(app_env, monkeypatch, fraction, expected):
    monkeypatch.setenv("PNEUMONIA_AUDIT_FRACTION", fraction)
    engine = _engine()
    for seed in range(6):
        add_prediction(engine, seed=seed, p=0.5 + seed / 20)
    at = open_page("review")
    at.text_input(key="reviewer_name_box").input("Dr Audit").run()
    shown = at.subheader[0].value
    at.selectbox(key="label_filter").run()  # a rerun keeps the same case
    assert at.subheader[0].value == shown
    assert any("Audit case: drawn at random" in c.value for c in at.caption) == (expected == "audit")
    at.button(key="agree").click().run()
    assert not at.exception and any("saved" in s.value for s in at.success)
    with engine.connect() as connection:
        assert [r[0] for r in connection.execute(text("SELECT selection FROM reviews"))] == [expected]


def test_one_pick_in_five_is_an_audit_case_by_default(app_env):
    engine = _engine()
    for seed in range(12):
        add_prediction(engine, seed=seed, p=0.5 + seed / 30)
    at = open_page("review")
    at.text_input(key="reviewer_name_box").input("Dr Five").run()
    for _ in range(10):
        at.button(key="agree").click().run()
        assert not at.exception
    with engine.connect() as connection:
        selections = [r[0] for r in connection.execute(text("SELECT selection FROM reviews ORDER BY id"))]
    assert selections.count("audit") == 2 and selections.count("queue") == 8, selections


def test_the_typed_reviewer_name_survives_a_reload(app_env):
    engine = _engine()
    add_prediction(engine, seed=1, p=0.6)
    at = open_page("review")
    at.text_input(key="reviewer_name_box").input("Dr Reload").run()
    assert dict(at.query_params) == {"reviewer": "Dr Reload"}
    again = open_page("review", reviewer="Dr Reload")  # a reload: a new session, the same address
    assert again.text_input(key="reviewer_name_box").value == "Dr Reload"
    again.button(key="agree").click().run()
    assert not again.exception
    assert dict(again.query_params) == {"reviewer": "Dr Reload"}  # kept on to the next case


def test_a_flagged_case_is_shown_behind_a_warning_and_can_be_marked_not_usable(app_env):
    engine = _engine()
    flagged = add_prediction(engine, seed=5, p=0.9, out_of_domain=True, domain_score=6.2)
    at = open_page("review", prediction=str(flagged))
    assert not at.exception
    assert any(w.value.startswith("Out of domain: outside the images this model was trained on") for w in at.warning)
    assert any("6.20" in w.value for w in at.warning)
    at.text_input(key="reviewer_name_box").input("Dr A").run()
    at.button(key="unusable").click().run()
    assert not at.exception and not at.error
    with engine.connect() as connection:
        row = connection.execute(text("SELECT agrees, corrected_label, domain_confirmed FROM reviews")).one()
    assert tuple(row) == (False, "UNUSABLE", False)


def test_confirming_a_flagged_case_is_recorded_with_the_review(app_env):
    engine = _engine()
    flagged = add_prediction(engine, seed=6, p=0.9, out_of_domain=True, domain_score=3.0)
    at = open_page("review", prediction=str(flagged))
    at.text_input(key="reviewer_name_box").input("Dr B").run()
    at.checkbox(key="domain-confirmed-0").check().run()
    at.button(key="agree").click().run()
    assert not at.exception and not at.error
    with engine.connect() as connection:
        row = connection.execute(text("SELECT agrees, corrected_label, domain_confirmed FROM reviews")).one()
    assert tuple(row) == (True, None, True)


def test_an_in_domain_case_has_no_warning_and_no_confirmation_box(app_env):
    engine = _engine()
    case = add_prediction(engine, seed=7, p=0.9, out_of_domain=False, domain_score=-1.0)
    at = open_page("review", prediction=str(case))
    assert not at.exception and not [w for w in at.warning if w.value.startswith("Out of domain")]
    assert not [c for c in at.checkbox if c.key and c.key.startswith("domain-confirmed")]
