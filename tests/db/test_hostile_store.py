"""The store under careless and hostile use: nothing half-written, nothing silently lost, nothing run."""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import text

from core.inference import Predictor
from db import repository
from db.engine import session_scope
from service import export, maintenance, predictions, reviews, store
from service.maintenance import backup, check_store
from tests.db.conftest import add_prediction
from tests.helpers import REPO_ROOT, png_bytes, run_main


def _store_files(data_dir):
    image_dir = data_dir / "images"
    return sorted(p.name for p in image_dir.rglob("*") if p.is_file()) if image_dir.exists() else []


def _counts(engine):
    with engine.connect() as connection:
        return tuple(connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("images", "predictions"))


@pytest.fixture()
def predictor(tiny_checkpoint):
    return Predictor.from_checkpoint(tiny_checkpoint, "cpu")


def test_refused_names_and_labels_leave_no_file(engine, data_dir, predictor):
    with pytest.raises(store.ValidationError, match="file name is 300 characters"):
        predictions.predict_and_log(engine, predictor, png_bytes(1, 96), "x" * 296 + ".png")
    with pytest.raises(store.ValidationError, match="original label"):
        predictions.predict_and_log(engine, predictor, png_bytes(2, 96), "a.png", original_label="CAT")
    assert _store_files(data_dir) == [] and _counts(engine) == (0, 0)


def test_a_failing_write_leaves_no_file(engine, data_dir, predictor):
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER full BEFORE INSERT ON predictions BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
        )
    with pytest.raises(store.StoreUnavailable, match="disk is full"):
        predictions.predict_and_log(engine, predictor, png_bytes(3, 96), "a.png")
    assert _store_files(data_dir) == [] and _counts(engine) == (0, 0)


def test_kill_during_predict_and_log_then_check_fix(engine, data_dir, tiny_checkpoint):
    script = textwrap.dedent(f"""
        import os, signal
        from core.inference import Predictor
        from db import repository
        from service import export, predictions, reader_study, reviews, store
        from tests.helpers import png_bytes

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)  # after the image was staged, before the commit

        repository.log_prediction = die
        engine = store.open_store()
        predictions.predict_and_log(engine, Predictor.from_checkpoint({str(tiny_checkpoint)!r}, "cpu"),
                                png_bytes(4, 96), "a.png")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env={**os.environ}, timeout=120)
    assert result.returncode == -9
    assert _counts(engine) == (0, 0)
    leftovers = _store_files(data_dir)
    assert len(leftovers) == 1 and leftovers[0].endswith(".part")  # never under its final name
    report = check_store(engine)
    assert len(report.orphan_files) == 1 and not report.rows_without_files
    assert check_store(engine, fix=True).fixed and check_store(engine).clean
    assert _store_files(data_dir) == []


def test_check_reports_rows_without_files_and_fix_never_deletes_them(engine, data_dir):
    first = add_prediction(engine, seed=1)
    add_prediction(engine, seed=2)
    reviews.submit_review(engine, first, "Dr A", True)
    with session_scope(engine) as session:
        path = repository.image_path(repository.get_prediction(session, first).image)
    path.unlink()
    (data_dir / "images" / "stray.bin").write_bytes(b"x")
    result = run_main("db", "check")
    assert result.returncode == 1
    assert "found 0 interrupted write(s), found 1 orphan file(s), 1 image row(s) without a file" in result.stdout
    assert "database integrity check: ok" in result.stdout
    result = run_main("db", "check", "--fix")
    assert result.returncode == 1 and "removed 1 orphan file(s), 1 image row(s) without a file" in result.stdout
    assert "image row without file: 1 (kept: restore the file from a backup)" in result.stdout
    assert _counts(engine) == (2, 2) and not (data_dir / "images" / "stray.bin").exists()
    assert maintenance.verify_log(engine, files=False).ok  # nothing committed was deleted


def test_crash_between_commit_and_rename_is_completed_not_deleted(engine, data_dir, tiny_checkpoint):
    script = textwrap.dedent(f"""
        import os, pathlib, signal
        from core.inference import Predictor
        from service import export, predictions, reviews, store

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)  # the row is committed; the file is still a .part

        pathlib.Path.replace = die
        engine = store.open_store()
        predictions.predict_and_log(engine, Predictor.from_checkpoint({str(tiny_checkpoint)!r}, "cpu"),
                                png_bytes_for_test, "a.png")
    """).replace("png_bytes_for_test", repr(png_bytes(7, 96)))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env={**os.environ}, timeout=120)
    assert result.returncode == -9
    assert _counts(engine) == (1, 1)
    assert [name.endswith(".part") for name in _store_files(data_dir)] == [True]
    found = run_main("db", "check")
    assert found.returncode == 1 and "found 1 interrupted write(s)" in found.stdout
    fixed = run_main("db", "check", "--fix")
    assert fixed.returncode == 0 and "completed 1 interrupted write(s)" in fixed.stdout
    assert _counts(engine) == (1, 1) and not any(name.endswith(".part") for name in _store_files(data_dir))
    assert run_main("db", "check").returncode == 0
    verify = run_main("db", "verify")
    assert verify.returncode == 0, verify.stdout  # the committed prediction and its image file are intact


def test_a_part_file_with_the_wrong_bytes_is_not_used(engine, data_dir):
    add_prediction(engine, seed=3)
    with session_scope(engine) as session:
        path = repository.image_path(repository.get_prediction(session, 1).image)
    path.rename(path.with_name(f".{path.name}.0123.part"))
    path.with_name(f".{path.name}.0123.part").write_bytes(b"not the image")
    report = check_store(engine, fix=True)
    assert report.rows_without_files == [1] and not report.interrupted and len(report.orphan_files) == 1


def test_check_runs_the_databases_own_integrity_check(engine, data_dir):
    for seed in range(3):
        add_prediction(engine, seed=seed)
    engine.dispose()
    with sqlite3.connect(data_dir / "reviews.db") as connection:  # the index's entries no longer match its rows
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute(
            "UPDATE sqlite_master SET sql = 'CREATE INDEX ix_predictions_image_id ON predictions (model_id)' "
            "WHERE name = 'ix_predictions_image_id'"
        )
    result = run_main("db", "check")
    assert result.returncode == 1 and "ix_predictions_image_id" in result.stdout.splitlines()[0]


def test_removed_or_replaced_database_refuses_writes(engine, data_dir, predictor):
    predictions.predict_and_log(engine, predictor, png_bytes(5, 96), "a.png")
    database = data_dir / "reviews.db"
    database.unlink()
    for suffix in ("-wal", "-shm"):
        (data_dir / f"reviews.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(store.StoreUnavailable, match="was removed while the app was running"):
        predictions.predict_and_log(engine, predictor, png_bytes(6, 96), "b.png")
    sqlite3.connect(database).close()  # another file under the same name
    with pytest.raises(store.StoreUnavailable, match="was replaced while the app was running"):
        reviews.submit_review(engine, 1, "Dr A", True)


def test_a_database_overwritten_in_place_refuses_the_next_write(engine, data_dir, predictor, tmp_path):
    predictions.predict_and_log(engine, predictor, png_bytes(5, 96), "a.png")
    other = store.open_store(f"sqlite:///{tmp_path / 'other.db'}")
    predictions.predict_and_log(other, predictor, png_bytes(9, 96), "other.png")
    other.dispose()
    database = data_dir / "reviews.db"
    inode = database.stat().st_ino
    shutil.copyfile(tmp_path / "other.db", database)  # cp other.db reviews.db: same inode, new bytes
    assert database.stat().st_ino == inode
    with pytest.raises(store.StoreUnavailable, match="was overwritten while the app was running"):
        predictions.predict_and_log(engine, predictor, png_bytes(6, 96), "b.png")
    with pytest.raises(store.StoreUnavailable, match="overwritten"):
        reviews.submit_review(engine, 1, "Dr A", True)


def test_a_backup_copied_over_the_live_file_is_refused_and_restore_is_safe(engine, data_dir, predictor, tmp_path):
    predictions.predict_and_log(engine, predictor, png_bytes(5, 96), "a.png")
    assert run_main("db", "backup", tmp_path / "copy.db").returncode == 0
    predictions.predict_and_log(engine, predictor, png_bytes(6, 96), "b.png")
    shutil.copyfile(tmp_path / "copy.db", data_dir / "reviews.db")  # a backup has an identity of its own
    with pytest.raises(store.StoreUnavailable, match="overwritten"):
        reviews.submit_review(engine, 1, "Dr A", True)
    engine.dispose()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    live = store.open_store(f"sqlite:///{fresh / 'live.db'}")
    predictions.predict_and_log(live, predictor, png_bytes(8, 96), "c.png")
    restored = run_main("db", "--database-url", f"sqlite:///{fresh / 'live.db'}", "restore", tmp_path / "copy.db")
    assert restored.returncode == 0 and "restart the app" in restored.stdout
    with pytest.raises(store.StoreUnavailable, match="overwritten"):  # the running app is told to restart
        reviews.submit_review(live, 1, "Dr A", True)
    again = store.open_store(f"sqlite:///{fresh / 'live.db'}")  # after a restart: the backup's content
    assert export.feedback_view(again).summary["predictions"] == 1
    bad = run_main("db", "restore", tmp_path / "missing.db")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_backup_is_consistent_while_the_app_holds_the_wal(engine, data_dir, tmp_path):
    for seed in range(3):
        add_prediction(engine, seed=seed)
    holder = engine.connect()  # an open connection keeps recent pages in the WAL
    try:
        result = run_main("db", "backup", tmp_path / "copy.db")
        assert result.returncode == 0, result.stderr
    finally:
        holder.close()
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("SELECT count(*) FROM predictions").fetchone() == (3,)
    again = run_main("db", "backup", tmp_path / "copy.db")
    assert again.returncode == 2 and "exists" in again.stderr
    with pytest.raises(store.StoreUnavailable, match="pg_dump"):
        from sqlalchemy import create_engine

        backup(create_engine("postgresql+psycopg://user@127.0.0.1:1/db"), tmp_path / "x")


def test_newer_schema_is_one_clear_message(engine, data_dir):
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(store.StoreUnavailable, match="revision 9999, newer than this app's"):
        store.open_store()
    result = run_main("db", "summary")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "newer than this app's" in result.stderr


def test_csv_cells_that_look_like_formulas_are_neutralised(engine, tmp_path):
    from core.data import read_label_overrides

    first = add_prediction(engine, seed=1, p=0.9, name="=HYPERLINK(evil).png")
    reviews.submit_review(engine, first, "=1+1", False, "NORMAL", notes="@SUM(A1)")
    out = tmp_path / "relabel.csv"
    export.write_relabel_export(engine, out)
    with open(out, newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["file_name"] == "'=HYPERLINK(evil).png" and row["reviewer_calls"] == "'=1+1 (unverified):NORMAL"
    assert read_label_overrides(out) == {"=HYPERLINK(evil).png": 0}  # training still matches the real name


def test_export_file_names_are_safe_on_disk(engine, tmp_path):
    names = ["..", "../../escape.png", ".hidden.png", "a b?.png"]
    for seed, name in enumerate(names):
        prediction = add_prediction(engine, seed=seed, p=0.9, name=name)
        reviews.submit_review(engine, prediction, "Dr A", True)
    out = tmp_path / "tree"
    assert export.write_relabel_export(engine, tmp_path / "x.csv", images_dir=out) == 4
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(written) == 4 and all(w.startswith("PNEUMONIA/") and "/." not in w for w in written)
    assert not (tmp_path / "escape.png").exists()


@pytest.mark.parametrize(
    "reviewer, agrees, message",
    [
        ("d\x00r", True, "control characters"),
        ("Dr \x1b[31mRed", True, "control characters"),
        ("Dr A", "no", "agrees must be True or False"),
    ],
)
def test_odd_review_input_is_refused_not_altered(engine, reviewer, agrees, message):
    prediction = add_prediction(engine, seed=1)
    with pytest.raises(store.ValidationError, match=message):
        reviews.submit_review(engine, prediction, reviewer, agrees)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reviews")).scalar() == 0
