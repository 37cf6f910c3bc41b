from db import repository
from db.engine import init_db, make_engine, session_scope
from tests.db.conftest import add_prediction
from tests.pages.conftest import open_page


def test_counts_agreement_disagreements_and_download(app_env):
    engine = init_db(make_engine())
    a = add_prediction(engine, seed=1, p=0.9, name="a.png")
    b = add_prediction(engine, seed=2, p=0.2, name="b.png")
    with session_scope(engine) as session:
        repository.add_review(session, a, "Dr A", True)
        repository.add_review(session, b, "Dr B", False, "PNEUMONIA", notes="<b>bold?</b>")
    at = open_page("feedback")
    assert not at.exception and not at.error
    shown = {m.label: m.value for m in at.metric}
    assert shown["Predictions"] == "2" and shown["Disagreements"] == "1" and shown["Current reviews"] == "2"
    disagreements = at.dataframe[1].value
    assert list(disagreements["notes"]) == ["<b>bold?</b>"]
    per_reviewer = at.dataframe[0].value
    assert per_reviewer.set_index("reviewer").loc["Dr B (unverified)", "disagreements"] == 1
    assert at.download_button[0].label == "Download relabel CSV (1 rows)"
    at.checkbox[0].uncheck().run()
    assert at.download_button[0].label == "Download relabel CSV (2 rows)"


def test_tables_with_user_text_neutralise_formulas_for_their_csv_download(app_env):
    engine = init_db(make_engine())
    a = add_prediction(engine, seed=1, p=0.9, name="=cmd.png")
    with session_scope(engine) as session:
        repository.add_review(session, a, "@SUM(A1)", False, "NORMAL", notes='=HYPERLINK("http://x","y")')
    at = open_page("feedback")
    assert not at.exception
    cells = [str(v) for frame in at.dataframe for column in frame.value.columns for v in frame.value[column]]
    assert "'@SUM(A1) (unverified)" in cells and '\'=HYPERLINK("http://x","y")' in cells
    assert "'=cmd.png" in cells
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)


def test_empty_database(app_env):
    at = open_page("feedback")
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Kappa"] == "n/a"
    assert any("No reviewer disagrees" in i.value for i in at.info)


def test_unaided_vs_aided_mrmc_section(app_env):
    from tests.service.test_reader_mrmc import _study

    engine = init_db(make_engine())
    at = open_page("feedback")
    assert any("at least two readers who each read the same cases" in i.value for i in at.info)
    _study(engine)
    at = open_page("feedback")
    assert not at.exception
    table = next(d.value for d in at.dataframe if "aided - unaided (95 % CI)" in d.value.columns)
    assert list(table["figure"]) == ["AUC", "sensitivity", "specificity"]
    assert any("3 readers x 24 cases (12 PNEUMONIA)" in c.value and "Hillis" in c.value for c in at.caption)
    download = next(b for b in at.download_button if b.label.startswith("Download the ratings"))
    assert download.label == "Download the ratings (CSV for python -m training.mrmc --input)"


def test_not_usable_answers_are_counted_and_left_out_of_the_figures(app_env):
    from service import reviews

    engine = init_db(make_engine())
    kept = add_prediction(engine, seed=1, p=0.9)
    dropped = add_prediction(engine, seed=2, p=0.9)
    reviews.submit_review(engine, kept, "ana", True)
    reviews.submit_review(engine, dropped, "ana", False, reviews.UNUSABLE)
    at = open_page("feedback")
    assert not at.exception
    assert next(m.value for m in at.metric if m.label == "Current reviews") == "1"
    assert any("1 image(s) marked not a usable chest X-ray" in c.value for c in at.caption)
