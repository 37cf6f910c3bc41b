"""The use cases run against the same real stores as ``tests/db``: a SQLite file, and PostgreSQL where installed."""

from tests.db.conftest import data_dir, engine, postgres_url

__all__ = ["data_dir", "engine", "postgres_url"]
