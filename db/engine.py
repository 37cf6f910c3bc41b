"""Engine, sessions and schema upgrades.

SQLite gets WAL mode, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` (so
concurrent writers queue instead of failing); other databases are used as they
are. The schema is owned by Alembic: :func:`init_db` upgrades to the newest
revision and never drops anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from db.settings import database_url, sqlite_busy_timeout

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (default: :func:`db.settings.database_url`).

    For a SQLite file the parent directory is created.
    """
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    timeout = sqlite_busy_timeout()
    engine = create_engine(url, connect_args={"timeout": timeout})
    database = Path(parsed.database) if parsed.database and parsed.database != ":memory:" else None
    identity: dict[str, tuple[int, int]] = {}

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin hook issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        if database is not None:
            _check_same_file(database, identity)
        # Take the write lock up front: read-then-write transactions cannot deadlock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class DatabaseReplacedError(OSError):
    """The SQLite file was removed or replaced while this process had it open; nothing is written."""


def _check_same_file(path: Path, identity: dict[str, tuple[int, int]]) -> None:
    """Refuse to go on when the database file is gone or is another file than the one first opened.

    SQLite keeps writing to an unlinked file (lost at the next start), so this
    is checked at the start of every transaction.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        if identity:
            raise DatabaseReplacedError(
                f"the database file {path} was removed while the app was running; nothing was saved. "
                "Restore it from a backup (python -m db backup) or restart the app to start a new one"
            ) from None
        return  # first use: SQLite creates it
    current = (stat.st_dev, stat.st_ino)
    first = identity.setdefault("file", current)
    if first != current:
        raise DatabaseReplacedError(
            f"the database file {path} was replaced while the app was running; nothing was saved. Restart the app"
        )


class NewerSchemaError(RuntimeError):
    """The database was written by a newer version of this app."""


def alembic_config(engine: Engine):
    """An Alembic ``Config`` bound to ``engine``'s URL and this package's migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, or ``None`` for an empty one."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def known_revisions() -> set[str]:
    """Every schema revision this code has a migration for."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def init_db(engine: Engine) -> Engine:
    """Bring the schema to the newest revision (creating it on first use).

    Raises:
        NewerSchemaError: the database is at a revision this code does not know
            (written by a newer version); nothing is changed.
    """
    current = current_revision(engine)
    if current is not None and current not in known_revisions():
        raise NewerSchemaError(
            f"the database schema is at revision {current}, newer than this app's {head_revision()}; "
            "update the app (git pull && make setup) or point DATABASE_URL at another database"
        )
    upgrade(engine, "head")
    return engine


def has_schema(engine: Engine) -> bool:
    """True when the core tables exist."""
    return "predictions" in inspect(engine).get_table_names()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One user action = one transaction: commit on success, roll back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
