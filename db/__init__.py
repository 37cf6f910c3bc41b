"""Review database: predictions, reviewer feedback and threshold changes (SQLAlchemy 2.0).

SQLite by default (a file under the project's data directory); any SQLAlchemy
URL, PostgreSQL included, through ``DATABASE_URL``.
"""
