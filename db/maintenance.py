"""Store maintenance: consistency check of the image store against the database, and online backups."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, delete, select
from sqlalchemy.engine import make_url

from db.actions import StoreUnavailable, transaction
from db.models import Image, Prediction, Review
from db.settings import image_store_dir


@dataclass
class CheckReport:
    """What ``python -m db check`` found (and removed with ``--fix``)."""

    orphan_files: list[str] = field(default_factory=list)
    """Files in the image store that no image row names (including interrupted ``.part`` writes)."""
    rows_without_files: list[int] = field(default_factory=list)
    """Image ids whose file is missing from the store."""
    fixed: bool = False

    @property
    def clean(self) -> bool:
        """True when the store and the database agree."""
        return not self.orphan_files and not self.rows_without_files


def check_store(engine: Engine, fix: bool = False, store: Path | None = None) -> CheckReport:
    """Compare the image store with the image rows; with ``fix``, remove orphan files and rows without files.

    Removing a row without a file also removes its predictions and their reviews
    (a case whose image is gone cannot be reviewed or exported).
    """
    root = Path(store or image_store_dir())
    with transaction(engine) as session:
        rows = {row.storage_path: row.id for row in session.scalars(select(Image))}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    report = CheckReport(
        orphan_files=sorted(on_disk - set(rows)),
        rows_without_files=sorted(image_id for path, image_id in rows.items() if path not in on_disk),
    )
    if fix and not report.clean:
        for name in report.orphan_files:
            (root / name).unlink(missing_ok=True)
        if report.rows_without_files:
            with transaction(engine) as session:
                predictions = select(Prediction.id).where(Prediction.image_id.in_(report.rows_without_files))
                session.execute(delete(Review).where(Review.prediction_id.in_(predictions)))
                session.execute(delete(Prediction).where(Prediction.image_id.in_(report.rows_without_files)))
                session.execute(delete(Image).where(Image.id.in_(report.rows_without_files)))
        report.fixed = True
    return report


def backup(engine: Engine, output: str | Path) -> Path:
    """A consistent copy of a SQLite database (SQLite's online backup API: includes what is still in the WAL).

    Raises:
        StoreUnavailable: not a SQLite database (use ``pg_dump`` for PostgreSQL), or the copy failed.
    """
    url = make_url(engine.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise StoreUnavailable(
            "backup copies SQLite files only; for PostgreSQL use: pg_dump --format=custom --file OUT DBNAME "
            "(restore with pg_restore --clean --dbname DBNAME OUT)"
        )
    target = Path(output)
    if target.exists():
        raise StoreUnavailable(f"{target} exists; choose a new file name for the backup")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with sqlite3.connect(url.database) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
    except sqlite3.Error as error:
        target.unlink(missing_ok=True)
        raise StoreUnavailable(f"backup failed: {error}") from None
    return target
