"""The Reader study page: create a study, read unaided without the AI, progress, the washout, the report."""

from db import repository
from db.engine import init_db, make_engine, session_scope
from service import reader_studies
from tests.db.conftest import add_prediction
from tests.pages.conftest import open_page


def _study(size=4):
    engine = init_db(make_engine())
    for seed in range(8):
        prediction = add_prediction(engine, seed=seed, p=0.1 + 0.1 * seed)
        with session_scope(engine) as session:
            image_id = repository.get_prediction(session, prediction).image_id
            repository.add_adjudication(session, image_id, "Dr Lead", "NORMAL" if seed % 2 else "PNEUMONIA", "agreed")
    reader_studies.create_study(engine, "pilot", size, ["Ana", "Ben"], "Dr Lead", seed=1)
    return engine


def test_the_unaided_session_shows_the_image_only_and_records_a_rating(app_env):
    engine = _study()
    at = open_page("reader_study")
    assert not at.exception
    at.text_input(key="reviewer_name_box").input("Ana").run()
    assert any(m.value == "Session: unaided (image only)" for m in at.markdown)
    assert not [m for m in at.markdown if m.value.startswith("AI:")]
    assert not [t for t in at.toggle if "heat" in (t.label or "").lower()]  # no heat-map control either
    assert not [t for t in at.text if t.value.endswith((".png", ".jpeg"))]  # the file name stays hidden
    at.radio(key=next(r.key for r in at.radio if r.key.startswith("rating-"))).set_value(4).run()
    at.button(key="record_read").click().run()
    assert not at.exception and not at.error
    progress = {p.reader: p for p in reader_studies.progress(engine, "pilot")}
    assert progress["Ana"].unaided == 1 and progress["Ben"].unaided == 0


def test_after_the_unaided_session_the_washout_holds_the_aided_one(app_env):
    engine = _study()
    for _ in range(4):
        step = reader_studies.next_read(engine, "pilot", "Ana")
        reader_studies.record_read(engine, "pilot", "Ana", step.case.case_id, "unaided", 2)
    at = open_page("reader_study")
    at.text_input(key="reviewer_name_box").input("Ana").run()
    assert any(w.value.startswith("The aided session opens after the washout") for w in at.warning)
    assert any(m.value.startswith("AI: ") for m in at.markdown)
    at.radio(key=next(r.key for r in at.radio if r.key.startswith("rating-"))).set_value(5).run()
    at.button(key="record_read").click().run()  # no reason given
    assert any("washout lasts until" in t.value for t in at.text)
    assert reader_studies.progress(engine, "pilot")[0].aided == 0


def test_someone_who_is_not_a_reader_sees_progress_but_reads_nothing(app_env):
    _study()
    at = open_page("reader_study")
    at.text_input(key="reviewer_name_box").input("Eve").run()
    assert not at.exception and any("not a reader of this study" in i.value for i in at.info)
    assert any("is not complete" in i.value for i in at.info)
