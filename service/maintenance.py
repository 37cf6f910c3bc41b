"""Store maintenance: consistency and integrity checks of the image store and the database, online backups
and restores."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from core.hashing import file_sha256
from db import audit, repository
from db.engine import new_identity
from db.models import Image
from db.settings import image_store_dir
from service.store import StoreUnavailable, read, transaction


@dataclass
class CheckReport:
    """What ``python -m db check`` found (and repaired with ``--fix``)."""

    orphan_files: list[str] = field(default_factory=list)
    """Files in the image store that no committed image row refers to (rolled-back ``.part`` writes, strays)."""
    interrupted: dict[int, str] = field(default_factory=dict)
    """Image id -> its ``.part`` file: committed rows whose rename into place was cut off (bytes match the hash)."""
    rows_without_files: list[int] = field(default_factory=list)
    """Image ids whose file is missing and cannot be completed; never deleted (restore from a backup)."""
    integrity: list[str] = field(default_factory=list)
    """What the database's own check reported ( ``["ok"]`` when sound)."""
    fixed: bool = False

    @property
    def database_ok(self) -> bool:
        """True when the database's own integrity check passed."""
        return self.integrity in ([], ["ok"])

    @property
    def clean(self) -> bool:
        """True when the store and the database agree and the database is sound."""
        return not (self.orphan_files or self.interrupted or self.rows_without_files) and self.database_ok

    def lines(self) -> list[str]:
        """What was found or done, one line each (file names escaped)."""
        done = self.fixed
        lines = [f"database integrity check: {'; '.join(self.integrity) or 'not run'}"]
        lines.append(
            f"{'completed' if done else 'found'} {len(self.interrupted)} interrupted write(s), "
            f"{'removed' if done else 'found'} {len(self.orphan_files)} orphan file(s), "
            f"{len(self.rows_without_files)} image row(s) without a file"
        )
        lines += [f"interrupted write of image {i}: {name!r}" for i, name in self.interrupted.items()]
        lines += [f"orphan file: {name!r}" for name in self.orphan_files]
        lines += [
            f"image row without file: {image_id} (kept: restore the file from a backup)"
            for image_id in self.rows_without_files
        ]
        return lines


def integrity_problems(engine: Engine) -> list[str]:
    """The database's own consistency check: SQLite's ``PRAGMA integrity_check``; on PostgreSQL, amcheck's
    ``bt_index_check`` on this schema's indexes when the extension is installed.

    Returns:
        ``["ok"]``, or one line per problem found (at most 100).
    """
    with transaction(engine) as session:
        if engine.dialect.name == "sqlite":
            rows = session.execute(text("PRAGMA integrity_check(100)")).scalars().all()
            return [str(row) for row in rows]
        if engine.dialect.name != "postgresql":
            return [f"no integrity check for {engine.dialect.name}"]
        if not session.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'")).first():
            return ["ok (amcheck is not installed: only the store's own checks ran; CREATE EXTENSION amcheck)"]
        indexes = session.execute(
            text(
                "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' "
                "AND c.relnamespace = current_schema()::regnamespace"
            )
        ).scalars()
        problems = []
        for index in indexes:
            try:
                with session.begin_nested():
                    session.execute(text("SELECT bt_index_check(CAST(:name AS regclass))"), {"name": index})
            except SQLAlchemyError as error:
                problems.append(f"index {index}: {str(error).splitlines()[0][:200]}")
        return problems or ["ok"]


def _parts(root: Path, storage_path: str) -> list[Path]:
    """The staged ``.<name>.<uuid>.part`` files of one stored path (see ``repository._stage_file``)."""
    target = root / storage_path
    return sorted(target.parent.glob(f".{target.name}.*.part")) if target.parent.is_dir() else []


def check_store(engine: Engine, fix: bool = False, store: Path | None = None) -> CheckReport:
    """Compare the image store with the committed image rows and run the database's own integrity check.

    With ``fix``: a committed row whose file is still a ``.part`` (a crash between the commit and the
    rename) is completed, the bytes renamed into place after their SHA-256 matched the row; files no
    committed row refers to are removed. Rows are never deleted: a row whose file is gone is reported.
    """
    root = Path(store or image_store_dir())
    with transaction(engine) as session:
        rows = {row.storage_path: (row.id, row.sha256) for row in session.scalars(select(Image))}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    report = CheckReport(integrity=integrity_problems(engine))
    completing: dict[int, Path] = {}
    for path, (image_id, sha256) in sorted(rows.items(), key=lambda item: item[1][0]):
        if path in on_disk:
            continue
        match = next((part for part in _parts(root, path) if file_sha256(part) == sha256), None)
        if match is None:
            report.rows_without_files.append(image_id)
        else:
            completing[image_id] = match
            report.interrupted[image_id] = str(match.relative_to(root))
    used = set(report.interrupted.values())
    report.orphan_files = sorted(on_disk - set(rows) - used)
    if fix:
        for image_id, part in completing.items():
            part.replace(root / next(p for p, (i, _) in rows.items() if i == image_id))
        for name in report.orphan_files:
            (root / name).unlink(missing_ok=True)
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
        with closing(sqlite3.connect(url.database)) as source, closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
            new_identity(copy)  # a copy is another database: copied over a live file, it is refused
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, nothing left in a log
    except sqlite3.Error as error:
        target.unlink(missing_ok=True)
        raise StoreUnavailable(f"backup failed: {error}") from None
    return target


def restore(engine: Engine, source: str | Path) -> Path:
    """Copy a backup into the live SQLite database through SQLite's backup API (safe beside its log).

    Running apps refuse further transactions on the restored file (it carries the backup's identity)
    until they are restarted, so none keeps showing or writing the old data.

    Raises:
        StoreUnavailable: not a SQLite database, the backup is missing or not a review database, or the
            copy failed.
    """
    url = make_url(engine.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise StoreUnavailable("restore copies SQLite files only; for PostgreSQL use pg_restore")
    backup_path = Path(source)
    if not backup_path.is_file():
        raise StoreUnavailable(f"{backup_path} is not a file")
    try:
        with closing(sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True)) as copy:
            if copy.execute("SELECT count(*) FROM sqlite_master WHERE name = 'store_identity'").fetchone()[0] != 1:
                raise StoreUnavailable(f"{backup_path} is not a backup of a review database")
            with closing(sqlite3.connect(url.database)) as live:
                copy.backup(live)
    except sqlite3.Error as error:
        raise StoreUnavailable(f"restore failed: {error}") from None
    return Path(url.database)


def verify_log(engine: Engine, kept_head: str | None = None, files: bool = True) -> audit.VerifyReport:
    """Walk the audit chain (see :mod:`db.audit`).

    Args:
        kept_head: a head hash kept from an earlier run; the log must still contain it.
        files: also re-hash every stored image file (``python -m db verify --quick`` skips it).
    """
    image_file = repository.image_path if files else None
    return read(engine, lambda session: audit.verify(session, kept_head, image_file))
