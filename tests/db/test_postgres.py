"""The same schema and repository on a real PostgreSQL server."""

import pytest
from sqlalchemy import text

from db import repository
from db.engine import current_revision, head_revision, init_db, make_engine, session_scope
from service import reviews, store
from tests.db.conftest import add_prediction


def test_postgres_round_trip(postgres_url, data_dir):
    engine = init_db(make_engine(postgres_url))
    assert current_revision(engine) == head_revision() == "0010"
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


def test_postgres_audit_log_verifies_and_catches_an_edit(postgres_url, data_dir, monkeypatch):
    """Timestamps come back zone-aware from PostgreSQL (naive from SQLite): the hashes must not care."""
    from service.maintenance import verify_log
    from service.reader_study import Identity, adjudicate, record_blind_read

    monkeypatch.setenv("PNEUMONIA_ADJUDICATORS", "lead")
    engine = init_db(make_engine(postgres_url))
    prediction_id = add_prediction(engine, seed=5, p=0.8)
    blind = record_blind_read(engine, prediction_id, Identity("Dr P", False), "NORMAL", "low")
    with session_scope(engine) as session:
        repository.add_review(session, prediction_id, "Dr P", False, "NORMAL", blind_read_id=blind.id)
        image_id = repository.get_prediction(session, prediction_id).image_id
    adjudicate(engine, image_id, Identity("lead", True), "NORMAL", "agree with reader")
    report = verify_log(engine, files=False)  # the server's database outlives each test's image folder
    assert report.ok and report.unlogged == 0 and report.entries >= 4
    with engine.begin() as connection:
        connection.execute(text("UPDATE adjudications SET reason = 'edited' WHERE image_id = :i"), {"i": image_id})
    broken = verify_log(engine, files=False)
    assert not broken.ok and "adjudication" in broken.problem and "was changed" in broken.problem
    engine.dispose()


def test_postgres_check_runs_amcheck_and_the_identity_is_checked(postgres_url, data_dir):
    from service.maintenance import integrity_problems

    engine = init_db(make_engine(postgres_url))
    add_prediction(engine, seed=6)
    with engine.begin() as connection:
        connection.execute(text("DROP EXTENSION IF EXISTS amcheck"))
    assert integrity_problems(engine)[0].startswith("ok (amcheck is not installed")
    with engine.begin() as connection:
        connection.execute(text("CREATE EXTENSION amcheck"))
    assert integrity_problems(engine) == ["ok"]
    with engine.begin() as connection:  # another database behind the same URL: a new identity
        connection.execute(text("UPDATE store_identity SET token = md5(token)"))
    with pytest.raises(store.StoreUnavailable, match="identity row changed"):
        reviews.submit_review(engine, 1, "Dr P", True)
    engine.dispose()


def test_postgres_appends_from_several_processes_at_once_all_land_on_one_chain(fresh_postgres_url, data_dir):
    """Two dashboard replicas are two processes with their own connections: every review they save at
    once must be stored and logged (the second insert of an entry id used to fail on the primary key)."""
    import threading

    from service.maintenance import verify_log

    engine = init_db(make_engine(fresh_postgres_url))
    predictions = [add_prediction(engine, seed=40 + i, p=0.7) for i in range(4)]
    replicas = [make_engine(fresh_postgres_url) for _ in range(4)]  # separate pools: separate server sessions
    barrier, failures = threading.Barrier(len(replicas)), []

    def review(index: int) -> None:
        barrier.wait()
        for prediction_id in predictions:
            try:
                with session_scope(replicas[index]) as session:
                    repository.add_review(session, prediction_id, f"Dr Replica {index}", True)
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                failures.append(repr(error)[:200])

    threads = [threading.Thread(target=review, args=(i,)) for i in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM reviews WHERE reviewer LIKE 'Dr Replica %'")).scalar()
    assert stored == len(replicas) * len(predictions)
    assert verify_log(engine, files=False).ok
    for replica in replicas:
        replica.dispose()
    engine.dispose()
