"""The tamper-evident audit log: a hash chain over every stored image (hash, path, name, given label),
prediction, review, blind read, adjudication,
threshold change, model promotion and queued training-label issue.

Each entry stores the canonical JSON of the row it records and
``hash = sha256(prev_hash + "\\n" + canonical JSON of the entry)``. Entries are
only ever appended, in the same transaction as the row they record; the unique
``prev_hash`` forbids two entries claiming the same predecessor (a fork).
:func:`verify` walks the chain and also compares every recorded row with the
row as it is now, so editing either the log or the data shows up at the first
entry that no longer matches, and re-hashes the stored image files. Deleting the
newest entries shows where their rows remain; deleting rows and entries together
shows only against a head hash kept elsewhere (a ticket, an e-mail):
``python -m db verify --head HASH``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.hashing import file_sha256
from db.models import (
    Adjudication,
    AuditEntry,
    BlindRead,
    Image,
    ModelPromotion,
    Prediction,
    ReaderStudy,
    Review,
    StudyRead,
    SuspectedLabelIssue,
    ThresholdChange,
    utcnow,
)

GENESIS = "0" * 64
"""The predecessor of the first entry."""


def _time(value: datetime | None) -> str | None:
    """A timestamp as UTC ISO text, the same whether the database kept the zone (PostgreSQL) or not (SQLite)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def _image(row: Image) -> dict[str, Any]:
    return {
        "sha256": row.sha256,
        "file_name": row.file_name,
        "storage_path": row.storage_path,
        "width": row.width,
        "height": row.height,
        "original_label": row.original_label,
        "created_at": _time(row.created_at),
    }


def _prediction(row: Prediction) -> dict[str, Any]:
    return {
        "image_id": row.image_id,
        "model_id": row.model_id,
        "p_pneumonia": row.p_pneumonia,
        "threshold": row.threshold,
        "predicted_label": row.predicted_label,
        "channel": row.channel,
        "created_at": _time(row.created_at),
    }


def _review(row: Review) -> dict[str, Any]:
    selection = {"selection": row.selection} if row.selection is not None else {}  # older entries have none
    return {
        **selection,
        "prediction_id": row.prediction_id,
        "reviewer": row.reviewer,
        "reviewer_verified": bool(row.reviewer_verified),
        "agrees": bool(row.agrees),
        "corrected_label": row.corrected_label,
        "confidence": row.confidence,
        "notes": row.notes,
        "supersedes_id": row.supersedes_id,
        "blind_read_id": row.blind_read_id,
        "created_at": _time(row.created_at),
    }


def _blind_read(row: BlindRead) -> dict[str, Any]:
    return {
        "prediction_id": row.prediction_id,
        "reviewer": row.reviewer,
        "reviewer_verified": bool(row.reviewer_verified),
        "label": row.label,
        "confidence": row.confidence,
        "created_at": _time(row.created_at),
    }


def _adjudication(row: Adjudication) -> dict[str, Any]:
    return {
        "image_id": row.image_id,
        "adjudicator": row.adjudicator,
        "adjudicator_verified": bool(row.adjudicator_verified),
        "label": row.label,
        "reason": row.reason,
        "created_at": _time(row.created_at),
    }


def _threshold_change(row: ThresholdChange) -> dict[str, Any]:
    return {
        "model_id": row.model_id,
        "threshold": row.threshold,
        "temperature": row.temperature,
        "bias": row.bias,
        "goal": row.goal,
        "changed_by": row.changed_by,
        "reason": row.reason,
        "created_at": _time(row.created_at),
    }


def _promotion(row: ModelPromotion) -> dict[str, Any]:
    return {
        "model_id": row.model_id,
        "checkpoint_path": row.checkpoint_path,
        "promoted_by": row.promoted_by,
        "reason": row.reason,
        "created_at": _time(row.created_at),
    }


def _label_issue(row: SuspectedLabelIssue) -> dict[str, Any]:
    return {
        "image_id": row.image_id,
        "prediction_id": row.prediction_id,
        "given_label": row.given_label,
        "p_given_label": row.p_given_label,
        "rank": row.rank,
        "method": row.method,
        "created_at": _time(row.created_at),
    }


def _reader_study(row: ReaderStudy) -> dict[str, Any]:
    return {
        "name": row.name,
        "created_by": row.created_by,
        "reference": row.reference,
        "washout_days": row.washout_days,
        "seed": row.seed,
        "cases": [[c.image_id, c.prediction_id, c.reference_label, c.position] for c in row.cases],
        "readers": [r.reader for r in row.readers],
        "created_at": _time(row.created_at),
    }


def _study_read(row: StudyRead) -> dict[str, Any]:
    return {
        "study_id": row.study_id,
        "case_id": row.case_id,
        "reader": row.reader,
        "modality": row.modality,
        "rating": row.rating,
        "washout_override": row.washout_override,
        "created_at": _time(row.created_at),
    }


RECORDED: dict[str, tuple[Any, Any]] = {
    "image": (Image, _image),
    "prediction": (Prediction, _prediction),
    "review": (Review, _review),
    "blind_read": (BlindRead, _blind_read),
    "adjudication": (Adjudication, _adjudication),
    "threshold_change": (ThresholdChange, _threshold_change),
    "model_promotion": (ModelPromotion, _promotion),
    "label_issue": (SuspectedLabelIssue, _label_issue),
    "reader_study": (ReaderStudy, _reader_study),
    "study_read": (StudyRead, _study_read),
}
"""Entity name -> (table, the fields the log records)."""

ENTITY_OF = {table: name for name, (table, _) in RECORDED.items()}

UPDATE_ACTIONS = {"label"}
"""Actions that log a later state of a row already logged (every other action logs a new row)."""


def canonical(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, exact floats."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(
    prev_hash: str,
    entry_id: int,
    action: str,
    entity: str,
    entity_id: int,
    actor: str,
    content: str,
    created_at: datetime,
) -> str:
    """The hash of one entry: it covers the previous entry's hash and every field of this one."""
    body = canonical(
        {
            "id": entry_id,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "actor": actor,
            "content": content,
            "created_at": _time(created_at),
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


APPEND_LOCK = 0x50_4E_45_55_4D_4F_4E
"""PostgreSQL advisory lock key held while an entry is appended (any constant shared by every process)."""


def _serialise_appends(session: Session) -> None:
    """Make appends from several processes take turns until their transactions end.

    Each entry's id and hash follow the last one. On PostgreSQL two transactions (two dashboard replicas)
    read the same last entry and the second insert failed on the primary key, losing that review; the
    advisory lock makes the second wait for the first to commit. SQLite takes one writer at a time already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})


def record(session: Session, row: Any, action: str, actor: str) -> AuditEntry:
    """Append the log entry for ``row`` (already flushed) in the caller's transaction."""
    entity = ENTITY_OF[type(row)]
    content = canonical(RECORDED[entity][1](row))
    _serialise_appends(session)
    last = session.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    entry_id, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
    created_at = utcnow()
    entry = AuditEntry(
        id=entry_id,
        action=action,
        entity=entity,
        entity_id=row.id,
        actor=actor[:100],
        content=content,
        prev_hash=prev_hash,
        hash=entry_hash(prev_hash, entry_id, action, entity, row.id, actor[:100], content, created_at),
        created_at=created_at,
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found."""

    entries: int
    verified_up_to: int
    """Id of the last entry before the first broken one (all of them when nothing is broken)."""
    head_hash: str
    broken_at: int | None = None
    problem: str = ""
    unlogged: int = 0
    """Recorded-kind rows with no log entry, older than the log (made before it covered their kind)."""
    files_checked: int = 0
    """Stored image files re-hashed against their recorded SHA-256 (0 with ``--quick``)."""

    @property
    def ok(self) -> bool:
        """True when every entry links and matches its row."""
        return self.broken_at is None

    def message(self) -> str:
        """One line for the page and the command line."""
        if self.ok:
            text = f"log verified up to entry {self.verified_up_to} of {self.entries}; head {self.head_hash[:16]}"
            if self.files_checked:
                text += f"; {self.files_checked} image file(s) match their SHA-256"
        else:
            text = f"log broken at entry {self.broken_at}: {self.problem} (verified up to entry {self.verified_up_to})"
        if self.unlogged:
            text += f"; {self.unlogged} row(s) older than the log have no entry"
        return text


def verify(session: Session, kept_head: str | None = None, image_file: Any = None) -> VerifyReport:
    """Walk the chain from the first entry; stop at the first broken link or mismatching row.

    Each row is compared with its latest entry (an image's label, once given, is logged again). Rows
    with no entry that are newer than the first logged row of their kind mean entries were cut from the
    log's end; deleting the newest entries *and* their rows can only be seen against a head hash kept
    outside the database.

    Args:
        kept_head: a head hash printed earlier and kept elsewhere: it must still be in the chain.
        image_file: ``Image -> Path``: re-hash every stored image file against its recorded SHA-256.
    """
    entries = session.scalar(select(func.count(AuditEntry.id))) or 0
    rows = {name: {row.id: row for row in session.scalars(select(table))} for name, (table, _) in RECORDED.items()}
    prev_hash, verified, expected_id = GENESIS, 0, 1
    latest: dict[tuple[str, int], AuditEntry] = {}
    created: dict[str, set[int]] = {name: set() for name in RECORDED}
    head_time: str | None = None
    hashes: set[str] = set()
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        problem = _link_problem(entry, prev_hash, expected_id)
        if problem:
            return VerifyReport(entries, verified, prev_hash, entry.id, problem)
        latest[(entry.entity, entry.entity_id)] = entry
        if entry.action not in UPDATE_ACTIONS:
            created[entry.entity].add(entry.entity_id)
        hashes.add(entry.hash)
        head_time = _time(entry.created_at)
        prev_hash, verified, expected_id = entry.hash, entry.id, entry.id + 1
    for entry in sorted(latest.values(), key=lambda item: item.id):
        problem = _row_problem(rows, entry)
        if problem:
            return VerifyReport(entries, entry.id - 1, prev_hash, entry.id, problem)
    if kept_head is not None and kept_head.strip().lower() not in hashes:
        return VerifyReport(
            entries,
            verified,
            prev_hash,
            verified + 1,
            f"the kept head {kept_head.strip()[:16]} is not in the log: its newest entries were removed",
        )
    unlogged = 0
    for name in RECORDED:
        logged = {entity_id for entity, entity_id in latest if entity == name}
        missing = sorted(set(rows[name]) - logged)
        first = min(created[name], default=None)  # rows before it are older than the log's cover of the kind
        newer = [
            row_id
            for row_id in missing
            if (first is not None and row_id > first)
            or (head_time is not None and (_time(rows[name][row_id].created_at) or "") > head_time)
        ]
        if newer:
            return VerifyReport(
                entries,
                verified,
                prev_hash,
                verified + 1,
                f"{name} {newer[0]} has no log entry though it is newer than logged ones: "
                "entries were removed from the log's end",
            )
        unlogged += len(missing)
    checked = 0
    if image_file is not None:
        for image in sorted(rows["image"].values(), key=lambda row: row.id):
            problem = _file_problem(image, image_file(image))
            if problem:
                return VerifyReport(entries, verified, prev_hash, verified + 1, problem, unlogged, checked)
            checked += 1
    return VerifyReport(entries, verified, prev_hash, unlogged=unlogged, files_checked=checked)


def _file_problem(image: Image, path: Any) -> str:
    try:
        digest = file_sha256(path)
    except OSError as error:
        return f"image {image.id}'s file cannot be read ({error.strerror or type(error).__name__})"
    if digest != image.sha256:
        return f"image {image.id}'s file was changed: its SHA-256 no longer matches the recorded one"
    return ""


def _link_problem(entry: AuditEntry, prev_hash: str, expected_id: int) -> str:
    if entry.id != expected_id:
        return f"entries {expected_id}-{entry.id - 1} are missing"
    if entry.prev_hash != prev_hash:
        return "does not link to the previous entry"
    recomputed = entry_hash(
        entry.prev_hash,
        entry.id,
        entry.action,
        entry.entity,
        entry.entity_id,
        entry.actor,
        entry.content,
        entry.created_at,
    )
    if recomputed != entry.hash:
        return "its content was changed after it was written"
    if entry.entity not in RECORDED:
        return f"unknown entity {entry.entity!r}"
    return ""


def _row_problem(rows: dict[str, dict[int, Any]], entry: AuditEntry) -> str:
    fields = RECORDED[entry.entity][1]
    row = rows[entry.entity].get(entry.entity_id)
    if row is None:
        return f"{entry.entity} {entry.entity_id} was deleted"
    if canonical(fields(row)) != entry.content:
        return f"{entry.entity} {entry.entity_id} was changed after it was logged"
    return ""
