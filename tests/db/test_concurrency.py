"""Real processes against one SQLite file: concurrent writers and a writer killed mid-transaction."""

import multiprocessing
import os
import signal
import time

from sqlalchemy import text

from db import repository
from db.engine import make_engine, session_scope
from tests.db.conftest import add_prediction


def _write_reviews(url: str, prediction_id: int, worker: int, count: int) -> None:
    engine = make_engine(url)
    for i in range(count):
        with session_scope(engine) as session:
            repository.add_review(
                session,
                prediction_id,
                f"reviewer-{worker}",
                i % 2 == 0,
                None if i % 2 == 0 else "NORMAL",
                notes=f"{worker}/{i}",
            )
    engine.dispose()


def test_eight_processes_write_4000_reviews(engine):
    prediction_id = add_prediction(engine, p=0.9)
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_reviews, args=(url, prediction_id, w, 500)) for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [w.exitcode for w in workers] == [0] * 8
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reviews")).scalar() == 4000
        per_worker = connection.execute(text("SELECT reviewer, count(*) FROM reviews GROUP BY reviewer")).all()
    assert sorted(n for _, n in per_worker) == [500] * 8


def _hold_transaction_open(url: str, prediction_id: int, ready) -> None:
    engine = make_engine(url)
    with session_scope(engine) as session:
        for i in range(200):
            repository.add_review(session, prediction_id, "doomed", True, notes=str(i))
        session.flush()
        ready.set()
        time.sleep(60)  # killed here, mid-transaction


def test_writer_killed_mid_transaction_leaves_consistent_database(engine):
    prediction_id = add_prediction(engine, p=0.9)
    with session_scope(engine) as session:
        repository.add_review(session, prediction_id, "survivor", True)
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    writer = context.Process(target=_hold_transaction_open, args=(url, prediction_id, ready))
    writer.start()
    assert ready.wait(120)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert writer.exitcode == -signal.SIGKILL
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert connection.execute(text("SELECT reviewer FROM reviews")).scalars().all() == ["survivor"]
    with session_scope(engine) as session:  # the lock died with the writer
        repository.add_review(session, prediction_id, "after", True)
