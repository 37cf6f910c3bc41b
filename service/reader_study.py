"""Review as a reader study: identities, blind first reads, adjudication, reader performance, the audit log.

Use-case functions over the store, like :mod:`service`: each takes the
engine, runs one transaction, returns plain dataclasses.

Reference labels for reader performance: a reader is scored against the
adjudicated label of a case unless they adjudicated it themselves (then the
case is left out for them), else against the majority of the *other*
readers' calls (their own vote never counts toward their own reference; a
case nobody else read, or where the others tie, is left out). The model is
scored on exactly the same cases against the same references.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.agreement import FleissKappa, PairAgreement, Proportion, fleiss, pairwise_kappa, reader_figures
from core.checkpoint import model_version
from core.images import load_image, read_image_file
from db import repository
from db.models import BlindRead, Prediction, Review
from db.settings import adjudicate_model_disagreements, adjudicators, blind_read_default, typed_adjudicators_allowed
from service.predictions import store_and_log
from service.store import ValidationError, read, transaction

if TYPE_CHECKING:
    from core.inference import Predictor

# Settings the reader-study pages show as defaults (they read the store's settings, not the page's).
__all__ = [
    "AdjudicationCase",
    "Identity",
    "adjudicate",
    "adjudicate_model_disagreements",
    "adjudication_queue",
    "blind_read_default",
    "blind_read_of",
    "queue_training_images",
    "reader_performance",
    "record_blind_read",
]


@dataclass(frozen=True)
class Identity:
    """Who is acting: a signed-in identity (verified) or a typed name (unverified)."""

    name: str
    verified: bool

    @property
    def shown(self) -> str:
        """The name as shown and exported."""
        return repository.shown_name(self.name, self.verified)

    @property
    def is_adjudicator(self) -> bool:
        """True when the name is in the adjudicator setting (``$PNEUMONIA_ADJUDICATORS``) and was verified by
        sign-in (a typed name only with ``$PNEUMONIA_TYPED_ADJUDICATORS=1``)."""
        listed = self.name.strip().casefold() in adjudicators()
        return listed and (self.verified or typed_adjudicators_allowed())


# ---------------------------------------------------------------- blind reads


@dataclass(frozen=True)
class BlindReadView:
    """A reviewer's unaided call."""

    id: int
    prediction_id: int
    reviewer: str
    label: str
    confidence: str
    created_at: datetime


def _blind_view(row: BlindRead) -> BlindReadView:
    return BlindReadView(row.id, row.prediction_id, row.reviewer, row.label, row.confidence, row.created_at)


def record_blind_read(
    engine: Engine, prediction_id: int, identity: Identity, label: str, confidence: str
) -> BlindReadView:
    """Store a reviewer's own call made without the model's output (before it is revealed to them)."""
    with transaction(engine) as session:
        row = repository.add_blind_read(session, prediction_id, identity.name, label, confidence, identity.verified)
        return _blind_view(row)


def blind_read_of(engine: Engine, prediction_id: int, reviewer: str) -> BlindReadView | None:
    """The reviewer's newest blind read of a case, if they made one."""

    def action(session: Session) -> BlindReadView | None:
        row = repository.latest_blind_read(session, prediction_id, reviewer)
        return _blind_view(row) if row else None

    return read(engine, action) if reviewer.strip() else None


# ---------------------------------------------------------------- adjudication


@dataclass(frozen=True)
class CallView:
    """One reviewer's current call on an image, with their blind read if any."""

    reviewer: str
    call: str
    confidence: str
    notes: str
    created_at: datetime
    model_label: str
    blind_call: str | None


@dataclass(frozen=True)
class AdjudicationCase:
    """An image whose reviewers disagree (or disagree with the model, as configured)."""

    image_id: int
    file_name: str
    image_path: Path
    prediction_id: int
    model_label: str
    p_pneumonia: float
    threshold: float
    model_version: str
    why: str
    resolution: str
    calls: list[CallView] = field(default_factory=list)


def _needs_adjudication(calls: dict[str, Review], with_model: bool) -> str:
    labels = {r.call for r in calls.values()}
    if len(labels) > 1:
        return "reviewers disagree"
    if with_model and any(not r.agrees for r in calls.values()):
        return "reviewers disagree with the model"
    return ""


def adjudication_queue(engine: Engine, include_model_disagreement: bool | None = None) -> list[AdjudicationCase]:
    """Images needing a final label: a disagreement with no adjudication since the newest review, oldest first.

    Args:
        include_model_disagreement: also queue cases where reviewers agree with each other but not with
            the model (default: ``$PNEUMONIA_ADJUDICATE_MODEL_DISAGREEMENT``).
    """
    with_model = adjudicate_model_disagreements() if include_model_disagreement is None else include_model_disagreement

    def action(session: Session) -> list[AdjudicationCase]:
        cases = []
        for _image_id, (calls, resolution) in repository.resolutions(session).items():
            if resolution.method == "adjudicated":
                continue  # settled, and no later review disagrees with the final label
            why = _needs_adjudication(calls, with_model) if calls else ""
            if resolution.method == "reopened":
                why = why or "a review after the adjudication disagrees with its label"
            if not why:
                continue
            cases.append(_adjudication_case(session, calls, resolution, why))
        return cases

    return read(engine, action)


def _adjudication_case(
    session: Session, calls: dict[str, Review], resolution: repository.Resolution, why: str
) -> AdjudicationCase:
    prediction = max((r.prediction for r in calls.values()), key=lambda p: p.id)
    image = prediction.image
    views = [
        CallView(
            repository.shown_name(name, review.reviewer_verified),
            review.call,
            review.confidence,
            review.notes,
            review.created_at,
            review.prediction.predicted_label,
            review.blind_read.label if review.blind_read is not None else None,
        )
        for name, review in sorted(calls.items())
    ]
    return AdjudicationCase(
        image.id,
        image.file_name,
        repository.image_path(image),
        prediction.id,
        prediction.predicted_label,
        prediction.p_pneumonia,
        prediction.threshold,
        model_version(prediction.model.arch, prediction.model.sha256),
        why,
        f"Resolved label: {resolution.label or 'none yet'} ({resolution.provenance})",
        views,
    )


@dataclass(frozen=True)
class AdjudicationView:
    """A recorded final label."""

    id: int
    image_id: int
    adjudicator: str
    label: str
    reason: str
    created_at: datetime


def adjudicate(engine: Engine, image_id: int, identity: Identity, label: str, reason: str) -> AdjudicationView:
    """Record the final label of an image.

    Raises:
        ValidationError: the identity does not hold the adjudicator role, no such image,
            bad label, or an empty reason. Nothing is written then.
    """
    if not identity.is_adjudicator:
        if identity.name.strip().casefold() in adjudicators():
            raise ValidationError(
                f"{identity.shown[:100]} is a typed name: adjudication needs sign-in "
                "(or PNEUMONIA_TYPED_ADJUDICATORS=1 on a single-user machine)"
            )
        raise ValidationError(
            f"{identity.shown[:100]} is not an adjudicator (adjudicators are listed in PNEUMONIA_ADJUDICATORS)"
        )
    with transaction(engine) as session:
        row = repository.add_adjudication(session, image_id, identity.name, label, reason, identity.verified)
        shown = repository.shown_name(row.adjudicator, row.adjudicator_verified)
        return AdjudicationView(row.id, row.image_id, shown, row.label, row.reason, row.created_at)


# ---------------------------------------------------------------- reader performance


@dataclass(frozen=True)
class ReaderRow:
    """One reader in one reading mode, and the model on the same cases."""

    reader: str
    mode: str
    """``"final"`` (every current call), ``"unaided"`` (blind reads), ``"aided"`` (calls after a blind read)."""
    n: int
    sensitivity: Proportion
    specificity: Proportion
    model_sensitivity: Proportion
    model_specificity: Proportion

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON and tables."""
        return {
            "reader": self.reader,
            "mode": self.mode,
            "n": self.n,
            "sensitivity": self.sensitivity.text(),
            "specificity": self.specificity.text(),
            "model sensitivity": self.model_sensitivity.text(),
            "model specificity": self.model_specificity.text(),
        }


@dataclass(frozen=True)
class ReaderReport:
    """Reader performance and agreement."""

    rows: list[ReaderRow]
    pairs: list[PairAgreement]
    fleiss: FleissKappa

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``python -m db summary``."""
        return {
            "readers": [row.as_dict() for row in self.rows],
            "pairwise_cohen_kappa": [
                {"readers": [p.first, p.second], "n": p.n, "agreement": _finite(p.agreement), "kappa": _finite(p.kappa)}
                for p in self.pairs
            ],
            "fleiss_kappa": {
                "kappa": _finite(self.fleiss.kappa),
                "cases": self.fleiss.cases,
                "readers_per_case": self.fleiss.readers_per_case,
            },
        }


def _finite(value: float) -> float | None:
    return None if value != value else round(value, 4)


def _reference(reader: str, calls: dict[str, Review], resolution: repository.Resolution) -> str:
    adjudication = resolution.adjudication if resolution.method == "adjudicated" else None
    if adjudication is not None:
        return "" if adjudication.adjudicator.casefold() == reader.casefold() else adjudication.label
    return repository.resolve_label([r.call for name, r in calls.items() if name != reader])


def latest_blind_reads(session: Session) -> dict[tuple[int, str], BlindRead]:
    """Each reader's newest blind read of each image: ``(image id, reader) -> row`` (inside a transaction)."""
    rows = session.scalars(select(BlindRead).join(Prediction).order_by(BlindRead.id))
    return {(row.prediction.image_id, row.reviewer): row for row in rows}


def reader_performance(engine: Engine) -> ReaderReport:
    """Per reader (final, unaided and aided calls) against reference labels, the model beside each, and kappas."""

    def action(session: Session) -> ReaderReport:
        scored: dict[tuple[str, str], list[tuple[str, str, str]]] = {}  # (reader, mode) -> (call, model, reference)
        shown: dict[str, str] = {}
        blind = latest_blind_reads(session)
        resolved = repository.resolutions(session)
        for image_id, (calls, resolution) in resolved.items():
            readers = set(calls) | {reader for (image, reader) in blind if image == image_id}
            for reader in readers:
                reference = _reference(reader, calls, resolution)
                if not reference:
                    continue
                review = calls.get(reader)
                if review is not None:
                    shown[reader] = repository.shown_name(reader, review.reviewer_verified)
                    entry = (review.call, review.prediction.predicted_label, reference)
                    scored.setdefault((reader, "final"), []).append(entry)
                    if review.blind_read_id is not None:
                        scored.setdefault((reader, "aided"), []).append(entry)
                read = blind.get((image_id, reader))
                if read is not None:
                    shown.setdefault(reader, repository.shown_name(reader, read.reviewer_verified))
                    entry = (read.label, read.prediction.predicted_label, reference)
                    scored.setdefault((reader, "unaided"), []).append(entry)
        rows = []
        order = {"final": 0, "unaided": 1, "aided": 2}
        for (reader, mode), entries in sorted(scored.items(), key=lambda item: (item[0][0], order[item[0][1]])):
            truth = [e[2] for e in entries]
            person = reader_figures([e[0] for e in entries], truth)
            machine = reader_figures([e[1] for e in entries], truth)
            rows.append(
                ReaderRow(
                    shown[reader],
                    mode,
                    person.n,
                    person.sensitivity,
                    person.specificity,
                    machine.sensitivity,
                    machine.specificity,
                )
            )
        final_calls: dict[str, dict[object, str]] = {}
        for image_id, (calls, _) in resolved.items():
            for name, review in calls.items():
                who = repository.shown_name(name, review.reviewer_verified)
                final_calls.setdefault(who, {})[image_id] = review.call
        per_case = [[r.call for r in calls.values()] for calls, _ in resolved.values()]
        return ReaderReport(rows, pairwise_kappa(final_calls), fleiss(per_case))

    return read(engine, action)


# ---------------------------------------------------------------- suspected training-label errors


def queue_training_images(
    engine: Engine, predictor: Predictor, items: Sequence[tuple[Path, str, float, int]], method: str
) -> int:
    """Store doubted training images with their given labels and queue them in the "Training data" queue.

    Each image gets a prediction of ``predictor`` (channel ``training_data``, so it
    never counts as a site case) and a suspected-label-issue row; images already
    queued are skipped. One transaction per image, so a failure loses nothing queued before it.

    Args:
        items: ``(path, given label, out-of-fold probability of it, rank)``.

    Returns:
        Number of images newly queued.

    Raises:
        core.images.ImageLoadError: an image cannot be read (those before it stay queued).
    """
    queued = 0
    done = read(engine, repository.queued_label_issue_hashes)
    for path, given_label, p_given, rank in items:
        data = read_image_file(path)
        digest = hashlib.sha256(data).hexdigest()
        if digest in done:
            continue
        image = load_image(data, name=path.name)
        result = predictor.predict_one(image, image_name=path.name)
        with transaction(engine) as session:
            _, prediction = store_and_log(
                session, predictor, data, path.name, given_label, image.size, result, repository.TRAINING_DATA_CHANNEL
            )
            repository.add_label_issue(session, prediction, given_label, p_given, rank, method)
        done.add(digest)
        queued += 1
    return queued
