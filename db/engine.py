"""Engine, sessions and schema upgrades.

SQLite gets WAL mode, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` (so
concurrent writers queue instead of failing); other databases are used as they
are. The schema is owned by Alembic: :func:`init_db` upgrades to the newest
revision and never drops anything.

Every transaction first checks that the database is still the one this engine
opened: for a SQLite file, that it was not removed or replaced (another inode)
nor overwritten in place (``cp other.db reviews.db``: the application id in the
header, read from the file itself, changes); for any database, that the
``store_identity`` row still holds the token learned at start. A mismatch
refuses the transaction before anything is written: SQLite would otherwise lay
its write-ahead log of the old file over the new one.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
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
        engine = create_engine(url, pool_pre_ping=True)
        where = parsed.render_as_string(hide_password=True)
        server_identity = _identity_of(engine)

        @event.listens_for(engine, "begin")
        def _same_database(connection) -> None:
            _check_token(connection, server_identity, where)

        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    timeout = sqlite_busy_timeout()
    engine = create_engine(url, connect_args={"timeout": timeout})
    database = Path(parsed.database) if parsed.database and parsed.database != ":memory:" else None
    identity = _identity_of(engine)

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
        _check_token(connection, identity, str(database or url))

    return engine


class DatabaseReplacedError(OSError):
    """The SQLite file was removed, replaced or overwritten while this process had it open; nothing is written."""


@dataclass
class StoreIdentity:
    """What one engine knows of the database it opened (learned by :func:`init_db`)."""

    file: tuple[int, int] | None = None
    """``(st_dev, st_ino)`` of the SQLite file."""
    token: str | None = None
    """The ``store_identity`` row's token."""
    application_id: int = 0
    """The SQLite header's application id this database carries (derived from the token)."""
    header_seen: bool = False
    """The id has been read back from the file itself (it reaches the file at the first checkpoint)."""


_IDENTITIES: weakref.WeakKeyDictionary[Engine, StoreIdentity] = weakref.WeakKeyDictionary()
_HEADER_FDS: dict[tuple[int, int], int] = {}
"""One read-only descriptor per SQLite file (device, inode), opened once and never closed: closing any
descriptor of a file drops every POSIX lock this process holds on it, SQLite's included, and another
connection could then checkpoint and delete the live log."""
SQLITE_MAGIC = b"SQLite format 3\x00"


def application_id(token: str) -> int:
    """The 31-bit SQLite application id derived from a store token."""
    return int(token[:8], 16) & 0x7FFFFFFF or 1


def _file_header(path: Path, key: tuple[int, int]) -> bytes:
    """The first 100 bytes of the file itself (not SQLite's cached or logged view of them)."""
    fd = _HEADER_FDS.get(key)
    if fd is None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) != key:  # replaced in between: the caller's next check says so
            return b""
        _HEADER_FDS[key] = fd
    return os.pread(fd, 100, 0)


def _identity_of(engine: Engine) -> StoreIdentity:
    return _IDENTITIES.setdefault(engine, StoreIdentity())


def _overwritten(path: Path, why: str) -> DatabaseReplacedError:
    return DatabaseReplacedError(
        f"the database file {path} was overwritten while the app was running ({why}); nothing was saved. "
        "Stop the app before replacing the database (or use python -m db restore), then start it again"
    )


def _check_same_file(path: Path, identity: StoreIdentity) -> None:
    """Refuse to go on when the database file is gone or is another file (another inode).

    SQLite keeps writing to an unlinked file (lost at the next start), so this
    is checked at the start of every transaction. A file overwritten in place
    keeps its inode: its header, read from the file itself, carries another
    application id (and :func:`_check_token` sees another token).
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        if identity.file:
            raise DatabaseReplacedError(
                f"the database file {path} was removed while the app was running; nothing was saved. "
                "Restore it from a backup (python -m db backup) or restart the app to start a new one"
            ) from None
        return  # first use: SQLite creates it
    current = (stat.st_dev, stat.st_ino)
    if identity.file is None:
        identity.file = current
    if identity.file != current:
        raise DatabaseReplacedError(
            f"the database file {path} was replaced while the app was running; nothing was saved. Restart the app"
        )
    if identity.token is None:
        return
    header = _file_header(path, current)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        if stat.st_size or identity.header_seen:
            raise _overwritten(path, "it is no longer a SQLite database")
        return
    found = int.from_bytes(header[68:72], "big")
    if found == identity.application_id:
        identity.header_seen = True
    elif found or identity.header_seen:  # 0 only until the first checkpoint writes the id
        raise _overwritten(path, f"application id {found:#x}, expected {identity.application_id:#x}")


def _check_token(connection, identity: StoreIdentity, where: str) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    """Inside the transaction: the identity row still holds the token this engine learned."""
    if identity.token is None:
        return
    try:
        found = connection.exec_driver_sql("SELECT token FROM store_identity WHERE id = 1").scalar()
    except DBAPIError:
        found = None
    if found != identity.token:
        connection.exec_driver_sql("ROLLBACK")
        raise _overwritten(Path(where), "its identity row changed")


def learn_identity(engine: Engine) -> str:
    """Read (or, for a schema without one, create) the store's identity token, and check it from now on.

    For SQLite the token's application id is also written to the file header and checkpointed, so a
    different file copied over this one shows in its first 100 bytes (SQLite's own view of a file
    overwritten behind its back comes from its cache and log, and does not change).

    Returns:
        The token.
    """
    state = _identity_of(engine)
    with engine.connect() as connection:
        token = connection.exec_driver_sql("SELECT token FROM store_identity WHERE id = 1").scalar()
        if token is None:
            token = uuid.uuid4().hex
            connection.execute(
                text("INSERT INTO store_identity (id, token, created_at) VALUES (1, :token, CURRENT_TIMESTAMP)"),
                {"token": token},
            )
        if engine.dialect.name == "sqlite":
            wanted = application_id(token)
            if connection.exec_driver_sql("PRAGMA application_id").scalar() != wanted:
                connection.exec_driver_sql(f"PRAGMA application_id = {wanted}")
            state.application_id = wanted
        connection.commit()
        if engine.dialect.name == "sqlite":
            raw = connection.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)")  # outside a transaction; best effort
    state.token = token
    return token


def new_identity(sqlite_connection) -> str:  # noqa: ANN001 - a sqlite3.Connection
    """Give a SQLite database (a fresh backup) an identity of its own; returns the token."""
    token = uuid.uuid4().hex
    sqlite_connection.execute("UPDATE store_identity SET token = ? WHERE id = 1", (token,))
    sqlite_connection.execute(f"PRAGMA application_id = {application_id(token)}")
    sqlite_connection.commit()
    return token


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
    head = _head_in_files()
    if head is not None and _stored_revision(engine) == head:  # the usual open: nothing to migrate, no Alembic
        learn_identity(engine)
        return engine
    current = current_revision(engine)
    if current is not None and current not in known_revisions():
        raise NewerSchemaError(
            f"the database schema is at revision {current}, newer than this app's {head_revision()}; "
            "update the app (git pull && make setup) or point DATABASE_URL at another database"
        )
    upgrade(engine, "head")
    learn_identity(engine)
    return engine


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|None)", re.MULTILINE)


@functools.cache  # the files do not change while the process runs
def _head_in_files() -> str | None:
    """The newest revision, read from the migration files' ``revision`` / ``down_revision`` lines.

    Importing Alembic and walking its scripts costs about 0.1 s of CPU at every start (the server's,
    and each command line's) for a store that is almost always current. ``None`` when the files do
    not give one single head (Alembic then decides).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for key, double, single in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            value = double or single
            if value:
                (revisions if key == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` by plain SQL, or ``None`` (no such table yet, or unreadable)."""
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    except DBAPIError:
        return None
    return rows[0] if len(rows) == 1 else None


def has_schema(engine: Engine) -> bool:
    """True when the core tables exist."""
    return "predictions" in inspect(engine).get_table_names()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One user action = one transaction: commit on success, roll back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
