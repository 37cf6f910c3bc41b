"""Named reader studies: a frozen case set, named readers, an unaided session, then an aided one after a washout.

A study draws its cases at random from the resolved cases (stratified by reference label),
freezes them with their reference labels, and names its readers. Each reader reads every
case unaided (the image only) in an order shuffled for them, then, once the washout has passed
since their last unaided read, every case again aided (with the AI's call, probability and
heat map) in another shuffled order. An aided read before the washout ends needs a reason,
which is stored and written to the audit log. Ratings are 1 (definitely normal) to 5
(definitely pneumonia); the call is PNEUMONIA from 3 up. ``core.mrmc`` analyses the ratings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.labels import CLASS_NAMES
from core.mrmc import Ratings
from db import audit, repository
from db.models import Prediction, ReaderStudy, StudyCase, StudyRead, StudyReader
from service.store import ValidationError, read, transaction

MODALITIES = ("unaided", "aided")
RATINGS = {
    1: "definitely normal",
    2: "probably normal",
    3: "possibly pneumonia",
    4: "probably pneumonia",
    5: "definitely pneumonia",
}
CALL_CUT = 3
"""A rating from this up is a PNEUMONIA call (the cut of the binary endpoints in ``core.mrmc``)."""
DEFAULT_WASHOUT_DAYS = 28
REFERENCES = ("adjudicated", "resolved")


@dataclass(frozen=True)
class StudyCaseView:
    """A case as a reader sees it (``prediction`` fields are for the aided session only)."""

    case_id: int
    position: int
    image_path: Any
    prediction_id: int
    predicted_label: str
    p_pneumonia: float
    threshold: float


@dataclass(frozen=True)
class NextRead:
    """What a reader does next in a study."""

    modality: str | None
    """``"unaided"``, ``"aided"``, or ``None`` when everything is read (or the washout holds)."""
    case: StudyCaseView | None
    done: int
    total: int
    washout_ends: datetime | None = None
    """Set while the aided session waits for the washout."""


@dataclass(frozen=True)
class StudyView:
    """A study's design."""

    name: str
    created_by: str
    reference: str
    washout_days: int
    readers: list[str]
    cases: int
    normal: int
    pneumonia: int
    created_at: datetime


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _view(study: ReaderStudy) -> StudyView:
    labels = [c.reference_label for c in study.cases]
    return StudyView(
        study.name,
        study.created_by,
        study.reference,
        study.washout_days,
        [r.reader for r in study.readers],
        len(labels),
        labels.count("NORMAL"),
        labels.count("PNEUMONIA"),
        study.created_at,
    )


def _study(session: Session, name: str) -> ReaderStudy:
    study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == (name or "").strip()))
    if study is None:
        raise ValidationError(f"no reader study named {str(name)[:60]!r}")
    return study


def create_study(
    engine: Engine,
    name: str,
    size: int,
    readers: list[str],
    created_by: str,
    washout_days: int = DEFAULT_WASHOUT_DAYS,
    reference: str = "adjudicated",
    seed: int | None = None,
) -> StudyView:
    """Draw and freeze a study's cases (stratified by reference label) and name its readers.

    Raises:
        ValidationError: a bad name, size, reader list, washout or reference; too few resolved cases
            of either label. Nothing is written then.
    """
    name = repository.clean_name(name, "study name")
    created_by = repository.clean_name(created_by, "creator name")
    names = list(dict.fromkeys(repository.clean_name(r, "reader name") for r in readers if r and r.strip()))
    if len(names) < 2:
        raise ValidationError("a reader study needs at least two readers")
    if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 2000:
        raise ValidationError("the number of cases must be a whole number from 4 to 2000")
    if isinstance(washout_days, bool) or not isinstance(washout_days, int) or not 0 <= washout_days <= 365:
        raise ValidationError("the washout must be 0 to 365 days")
    if reference not in REFERENCES:
        raise ValidationError(f"reference must be one of {', '.join(REFERENCES)}")
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)

    with transaction(engine) as session:
        if session.scalar(select(ReaderStudy.id).where(ReaderStudy.name == name)) is not None:
            raise ValidationError(f"a reader study named {name!r} exists already")
        pool = _eligible_cases(session, reference)
        chosen = _stratified(pool, size, random.Random(seed))
        study = ReaderStudy(name=name, created_by=created_by, reference=reference, washout_days=washout_days, seed=seed)
        session.add(study)
        session.flush()
        for position, (image_id, prediction_id, label) in enumerate(chosen):
            session.add(
                StudyCase(
                    study_id=study.id,
                    image_id=image_id,
                    prediction_id=prediction_id,
                    reference_label=label,
                    position=position,
                )
            )
        for reader in names:
            session.add(StudyReader(study_id=study.id, reader=reader))
        session.flush()
        session.refresh(study, ["cases", "readers"])
        audit.record(session, study, "create_study", created_by)
        return _view(study)


def _eligible_cases(session: Session, reference: str) -> dict[str, list[tuple[int, int, str]]]:
    """Resolved images by reference label: ``(image id, newest prediction id, label)``."""
    pool: dict[str, list[tuple[int, int, str]]] = {label: [] for label in CLASS_NAMES}
    for image_id, (_calls, resolution) in repository.resolutions(session).items():
        if not resolution.label or (reference == "adjudicated" and resolution.method != "adjudicated"):
            continue
        newest = session.scalar(
            select(Prediction.id)
            .where(Prediction.image_id == image_id, Prediction.channel != repository.TRAINING_DATA_CHANNEL)
            .order_by(Prediction.id.desc())
            .limit(1)
        )
        if newest is not None:
            pool[resolution.label].append((image_id, newest, resolution.label))
    return pool


def _stratified(
    pool: dict[str, list[tuple[int, int, str]]], size: int, rng: random.Random
) -> list[tuple[int, int, str]]:
    """``size`` cases at random, each label in proportion to the pool (at least two of each)."""
    total = sum(len(v) for v in pool.values())
    if total < size or any(len(v) < 2 for v in pool.values()):
        raise ValidationError(
            f"only {total} eligible resolved case(s) ({', '.join(f'{len(v)} {k}' for k, v in pool.items())}); "
            f"a study of {size} needs that many, with at least two of each label"
        )
    normal = min(max(2, round(size * len(pool["NORMAL"]) / total)), len(pool["NORMAL"]), size - 2)
    counts = {"NORMAL": normal, "PNEUMONIA": size - normal}
    if counts["PNEUMONIA"] > len(pool["PNEUMONIA"]):
        counts = {"PNEUMONIA": len(pool["PNEUMONIA"]), "NORMAL": size - len(pool["PNEUMONIA"])}
    chosen = [case for label in CLASS_NAMES for case in rng.sample(sorted(pool[label]), counts[label])]
    rng.shuffle(chosen)
    return chosen


def list_studies(engine: Engine) -> list[StudyView]:
    """Every study, newest first."""
    return read(engine, lambda s: [_view(x) for x in s.scalars(select(ReaderStudy).order_by(ReaderStudy.id.desc()))])


def get_study(engine: Engine, name: str) -> StudyView:
    """One study's design (``ValidationError`` when there is none)."""
    return read(engine, lambda s: _view(_study(s, name)))


def reading_order(study: ReaderStudy, reader: str, modality: str) -> list[StudyCase]:
    """The study's cases in the order ``reader`` reads them in ``modality`` (shuffled per reader and session)."""
    cases = list(study.cases)
    random.Random(f"{study.seed}:{reader}:{modality}").shuffle(cases)
    return cases


def _reads(session: Session, study: ReaderStudy, reader: str | None = None) -> list[StudyRead]:
    query = select(StudyRead).where(StudyRead.study_id == study.id).order_by(StudyRead.id)
    if reader is not None:
        query = query.where(StudyRead.reader == reader)
    return list(session.scalars(query))


def _reader(study: ReaderStudy, reader: str) -> str:
    name = (reader or "").strip()
    if name not in {r.reader for r in study.readers}:
        raise ValidationError(f"{name[:60]!r} is not a reader of the study {study.name!r}")
    return name


def _washout_ends(study: ReaderStudy, reads: list[StudyRead]) -> datetime | None:
    unaided = [_aware(r.created_at) for r in reads if r.modality == "unaided"]
    return max(unaided) + timedelta(days=study.washout_days) if unaided else None


def next_read(engine: Engine, name: str, reader: str, now: datetime | None = None) -> NextRead:
    """The reader's next case: every unaided read first, then (after the washout) every aided one.

    Raises:
        ValidationError: no such study, or not one of its readers.
    """

    def action(session: Session) -> NextRead:
        study = _study(session, name)
        who = _reader(study, reader)
        reads = _reads(session, study, who)
        done = {(r.case_id, r.modality) for r in reads}
        total = 2 * len(study.cases)
        for modality in MODALITIES:
            for case in reading_order(study, who, modality):
                if (case.id, modality) in done:
                    continue
                ends = _washout_ends(study, reads) if modality == "aided" else None
                view = StudyCaseView(
                    case.id,
                    case.position,
                    repository.image_path(case.image),
                    case.prediction_id,
                    case.prediction.predicted_label,
                    case.prediction.p_pneumonia,
                    case.prediction.threshold,
                )
                if ends is not None and _now(now) < ends:
                    return NextRead("aided", view, len(done), total, ends)
                return NextRead(modality, view, len(done), total)
        return NextRead(None, None, len(done), total)

    return read(engine, action)


def record_read(
    engine: Engine,
    name: str,
    reader: str,
    case_id: int,
    modality: str,
    rating: int,
    washout_override: str = "",
    now: datetime | None = None,
) -> None:
    """Store one read. An aided read needs every unaided read done and the washout passed (or a reason).

    Raises:
        ValidationError: bad rating or modality, a case read already in this session, aided before the
            unaided session is complete, or before the washout without a reason. Nothing is written then.
    """
    if modality not in MODALITIES:
        raise ValidationError(f"modality must be one of {', '.join(MODALITIES)}")
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in RATINGS:
        raise ValidationError("the rating must be a whole number from 1 to 5")
    override = repository.clean_text(washout_override, "washout override reason")
    with transaction(engine) as session:
        study = _study(session, name)
        who = _reader(study, reader)
        case = session.get(StudyCase, case_id)
        if case is None or case.study_id != study.id:
            raise ValidationError(f"case {case_id} is not in the study {study.name!r}")
        reads = _reads(session, study, who)
        if any(r.case_id == case_id and r.modality == modality for r in reads):
            raise ValidationError(f"case {case.position + 1} was read {modality} already; a read is final")
        if modality == "aided":
            unaided = sum(r.modality == "unaided" for r in reads)
            if unaided < len(study.cases):
                raise ValidationError(
                    f"the aided session starts after every unaided read ({unaided} of {len(study.cases)} done)"
                )
            ends = _washout_ends(study, reads)
            if ends is not None and _now(now) < ends and not override:
                raise ValidationError(
                    f"the washout lasts until {ends:%Y-%m-%d %H:%M} UTC; give a reason to read aided before then"
                )
            if ends is not None and _now(now) >= ends:
                override = ""  # the washout was respected: nothing to explain
        elif override:
            raise ValidationError("a washout override applies to aided reads only")
        row = StudyRead(
            study_id=study.id,
            case_id=case_id,
            reader=who,
            modality=modality,
            rating=rating,
            washout_override=override,
            created_at=_now(now),
        )
        session.add(row)
        session.flush()
        audit.record(session, row, "washout_override" if override else "study_read", who)


@dataclass(frozen=True)
class ReaderProgress:
    """One reader's progress."""

    reader: str
    unaided: int
    aided: int
    cases: int
    washout_ends: datetime | None
    overrides: int


def progress(engine: Engine, name: str) -> list[ReaderProgress]:
    """Per reader: reads done per session, when the washout ends, overrides used."""

    def action(session: Session) -> list[ReaderProgress]:
        study = _study(session, name)
        reads = _reads(session, study)
        out = []
        for reader in study.readers:
            own = [r for r in reads if r.reader == reader.reader]
            out.append(
                ReaderProgress(
                    reader.reader,
                    sum(r.modality == "unaided" for r in own),
                    sum(r.modality == "aided" for r in own),
                    len(study.cases),
                    _washout_ends(study, own),
                    sum(bool(r.washout_override) for r in own),
                )
            )
        return out

    return read(engine, action)


def study_rows(engine: Engine, name: str) -> list[dict[str, Any]]:
    """Long-format ratings ``reader, case, modality, truth, rating`` (the ``training.mrmc`` CSV's columns)."""

    def action(session: Session) -> list[dict[str, Any]]:
        study = _study(session, name)
        truth = {c.id: int(c.reference_label == "PNEUMONIA") for c in study.cases}
        position = {c.id: c.position + 1 for c in study.cases}
        return [
            {
                "reader": r.reader,
                "case": position[r.case_id],
                "modality": r.modality,
                "truth": truth[r.case_id],
                "rating": r.rating,
            }
            for r in _reads(session, study)
        ]

    return read(engine, action)


def study_ratings(engine: Engine, name: str) -> Ratings:
    """The complete block of ratings for ``core.mrmc``.

    Raises:
        ValidationError: reads are missing (the message says whose and how many).
    """
    missing = [
        f"{p.reader}: {p.cases - p.unaided} unaided, {p.cases - p.aided} aided"
        for p in progress(engine, name)
        if p.unaided < p.cases or p.aided < p.cases
    ]
    if missing:
        raise ValidationError(f"the study {name.strip()!r} is not complete; missing reads: {'; '.join(missing)}")
    rows = study_rows(engine, name)
    order = {m: i for i, m in enumerate(MODALITIES)}
    return Ratings.from_rows(sorted(rows, key=lambda r: order[r["modality"]]))


def ai_scores(engine: Engine, name: str) -> tuple[list[int], list[float]]:
    """Each case's reference (1 = pneumonia) and the AI's P(PNEUMONIA), in case order."""

    def action(session: Session) -> tuple[list[int], list[float]]:
        study = _study(session, name)
        return (
            [int(c.reference_label == "PNEUMONIA") for c in study.cases],
            [float(c.prediction.p_pneumonia) for c in study.cases],
        )

    return read(engine, action)
