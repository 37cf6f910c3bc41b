"""Opening the review store and running one transaction per user action.

Two error types cross the use-case boundary:

- :class:`StoreUnavailable`: the database or image store cannot be used (locked,
  missing, unreachable, read-only); nothing was saved.
- :class:`ValidationError`: input the store refuses; nothing was saved.

Model errors (``core.images.ImageLoadError``, ``core.checkpoint.CheckpointError``)
pass through unchanged, so callers can tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from db.engine import DatabaseReplacedError, NewerSchemaError, has_schema, init_db, make_engine, session_scope
from db.remote_images import RemoteImageStoreError
from db.repository import ValidationError
from db.settings import database_configured

__all__ = ["Store", "StoreUnavailable", "ValidationError", "configured_store", "open_store", "read", "transaction"]

T = TypeVar("T")

Store = Engine
"""The handle pages and commands hold for the review store (open it with :func:`open_store`)."""


class StoreUnavailable(RuntimeError):
    """The review database or image store cannot be used right now; nothing was saved. One-line message."""


def _store_message(error: Exception) -> str:
    if isinstance(error, RemoteImageStoreError):
        return f"Nothing was saved: {error}"
    if isinstance(error, OperationalError) and "locked" in str(error).lower():
        return "The database is busy (locked by another writer). Nothing was saved; please try again."
    cause = getattr(error, "orig", None)
    if isinstance(error, DatabaseReplacedError) or isinstance(cause, DatabaseReplacedError):
        return f"The review database is not available: {cause or error}"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return f"The review database is not available, nothing was saved: {first}"


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """:func:`db.engine.session_scope`, store failures turned into :class:`StoreUnavailable`."""
    try:
        with session_scope(engine) as session:
            yield session
    except (SQLAlchemyError, OSError) as error:
        raise StoreUnavailable(_store_message(error)) from error


def read(engine: Engine, action: Callable[[Session], T]) -> T:
    """Run ``action`` in one transaction and return its result (store failures as :class:`StoreUnavailable`)."""
    with transaction(engine) as session:
        return action(session)


def open_store(url: str | None = None) -> Engine:
    """The engine for ``url`` (default ``$DATABASE_URL``), schema brought to the newest revision.

    Raises:
        StoreUnavailable: the database cannot be opened or migrated, or has a newer schema.
    """
    engine = _opened(url, create=True)
    assert engine is not None  # create=True always gives an engine
    return engine


@contextmanager
def _store_errors() -> Iterator[None]:
    """Opening or migrating the store: every failure becomes one :class:`StoreUnavailable`."""
    try:
        yield
    except NewerSchemaError as error:
        raise StoreUnavailable(f"The review database cannot be used: {error}") from error
    except (SQLAlchemyError, OSError) as error:
        raise StoreUnavailable(_store_message(error)) from error


def _opened(url: str | None, create: bool) -> Engine | None:
    with _store_errors():
        engine = make_engine(url)
        if not create and not has_schema(engine):
            return None
        return init_db(engine)


def configured_store() -> Engine | None:
    """The review store when one is configured (``$DATABASE_URL``, or the default file exists) and has a schema.

    Never creates a database.

    Raises:
        StoreUnavailable: a configured database cannot be read or migrated.
    """
    return _opened(None, create=False) if database_configured() else None
