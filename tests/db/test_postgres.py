"""The same schema and repository on a real PostgreSQL server."""

from sqlalchemy import text

from db import repository
from db.engine import current_revision, head_revision, init_db, make_engine, session_scope
from tests.db.conftest import add_prediction


def test_postgres_round_trip(postgres_url, data_dir):
    engine = init_db(make_engine(postgres_url))
    assert current_revision(engine) == head_revision() == "0005"
    prediction_id = add_prediction(engine, p=0.6)
    with session_scope(engine) as session:
        repository.add_review(session, prediction_id, "Dr Ü", False, "NORMAL", notes="<b>ok</b> 'quoted'")
    with session_scope(engine) as session:
        summary = repository.feedback_summary(session)
        rows = repository.relabel_rows(session)
        queue = repository.review_queue(session)
    assert summary["disagreements"] == 1 and rows[0]["resolved_label"] == "NORMAL"
    assert [p.id for p in queue] == [prediction_id]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT notes FROM reviews")).scalar() == "<b>ok</b> 'quoted'"
    init_db(engine)  # idempotent on PostgreSQL too
    engine.dispose()
