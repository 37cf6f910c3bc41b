from sqlalchemy import inspect, text

from db.engine import current_revision, head_revision, init_db, make_engine, session_scope, upgrade
from tests.db.conftest import add_prediction


def test_default_is_a_sqlite_file_in_the_data_dir_with_wal_and_foreign_keys(data_dir):
    engine = init_db(make_engine())
    assert (data_dir / "reviews.db").is_file()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert current_revision(engine) == head_revision() == "0010"


def test_database_url_setting(data_dir, monkeypatch, tmp_path):
    other = tmp_path / "elsewhere" / "x.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{other}")
    init_db(make_engine())
    assert other.is_file() and not (data_dir / "reviews.db").exists()


def test_init_is_idempotent_and_keeps_data(engine):
    prediction_id = add_prediction(engine)
    init_db(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT id FROM predictions")).scalar() == prediction_id


def test_upgrade_from_first_schema_keeps_rows(data_dir):
    engine = make_engine()
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "threshold_changes" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO images (sha256, file_name, storage_path, width, height, created_at) "
                "VALUES ('ab', 'old.png', 'ab/ab.png', 1, 1, '2026-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO model_versions (sha256, name, arch, created_at) "
                "VALUES ('cd', 'm', 'resnet18', '2026-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO predictions (image_id, model_id, p_normal, p_pneumonia, threshold, predicted_label, "
                "created_at) VALUES (1, 1, 0.2, 0.8, 0.5, 'PNEUMONIA', '2026-01-01')"
            )
        )
    init_db(engine)  # what the app does on start
    assert current_revision(engine) == head_revision() == "0010"
    with engine.connect() as connection:
        row = connection.execute(text("SELECT predicted_label, channel FROM predictions")).one()
    assert tuple(row) == ("PNEUMONIA", "dashboard")
    assert "threshold_changes" in inspect(engine).get_table_names()


def test_failed_action_writes_nothing(engine):
    from db import repository
    from tests.db.conftest import png_bytes

    try:
        with session_scope(engine) as session:
            repository.store_image(session, png_bytes(5), "a.png")
            raise RuntimeError("crash after the first write")
    except RuntimeError:
        pass
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM images")).scalar() == 0


def test_the_migration_files_name_alembics_head():
    """init_db skips Alembic when the store is at the head read from the files: that head must be Alembic's."""
    from db.engine import _head_in_files

    assert _head_in_files() == head_revision()


def test_a_current_store_opens_without_importing_alembic(data_dir):
    """Opening a store that needs no migration costs one query, not Alembic's import and script walk
    (0.13 s against 0.01 s at every server start and command line)."""
    import subprocess
    import sys

    opened = (
        "import sys; from db.engine import init_db, make_engine; init_db(make_engine()); "
        "print('alembic' in sys.modules)"
    )
    first = subprocess.run([sys.executable, "-c", opened], capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-c", opened], capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["True"]  # a new store is created by the migrations
    assert again.stdout.split() == ["False"]
    engine = make_engine()
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:  # the identity check still ran
        assert connection.exec_driver_sql("SELECT count(*) FROM store_identity").scalar() == 1
