"""The review queue, one case with its history, submitting a review, and the reviewed cases behind site figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, object_session

from core.checkpoint import model_version
from core.domain import WARNING as OUT_OF_DOMAIN_WARNING
from core.labels import CLASS_NAMES as LABELS
from core.labels import UNUSABLE
from core.operating_point import decision_text
from db import repository
from db.models import Adjudication, Prediction, Review
from db.repository import CONFIDENCE_LEVELS, MAX_NOTES, QueueFilters
from db.settings import audit_fraction
from service.store import read, transaction

__all__ = [
    "CONFIDENCE_LEVELS",
    "LABELS",
    "MAX_NOTES",
    "OUT_OF_DOMAIN_WARNING",
    "UNUSABLE",
    "CaseView",
    "QueueFilters",
    "audit_fraction",
    "ReviewView",
    "ReviewedCase",
    "load_audit_case",
    "load_case",
    "load_queue",
    "reviewed_cases",
    "reviews_fingerprint",
    "submit_review",
]


@dataclass(frozen=True)
class ReviewView:
    """One review as shown in a case's history."""

    id: int
    reviewer: str
    agrees: bool
    corrected_label: str | None
    call: str
    confidence: str
    notes: str
    created_at: datetime
    supersedes_id: int | None
    reviewer_verified: bool = False
    blind_call: str | None = None
    """The reviewer's unaided call before the model's output was shown, when the read was blind."""

    @property
    def shown_reviewer(self) -> str:
        """The name as shown: typed names are marked unverified."""
        return repository.shown_name(self.reviewer, self.reviewer_verified)


@dataclass(frozen=True)
class CaseView:
    """A prediction to review, with everything the Review page shows."""

    id: int
    file_name: str
    image_path: Path
    predicted_label: str
    p_normal: float
    p_pneumonia: float
    threshold: float
    model_version: str
    created_at: datetime
    reviews: list[ReviewView] = field(default_factory=list)
    image_id: int = 0
    original_label: str | None = None
    """The label the image came with (training data), if any."""
    doubt: str = ""
    """Why a training image is queued: its given label and the out-of-fold probability of it ("" otherwise)."""
    resolution: str = ""
    """The image's resolved label and its provenance ("" before any review)."""
    out_of_domain: bool | None = None
    """The image was flagged outside the training images (``None``: not checked)."""
    domain_score: float | None = None

    @property
    def decision(self) -> str:
        """The model's call with P(PNEUMONIA) and the threshold it was compared with."""
        return decision_text(self.p_pneumonia, self.threshold, self.predicted_label)


def _review_view(review: Review) -> ReviewView:
    return ReviewView(
        review.id,
        review.reviewer,
        review.agrees,
        review.corrected_label,
        review.call,
        review.confidence,
        review.notes,
        review.created_at,
        review.supersedes_id,
        review.reviewer_verified,
        review.blind_read.label if review.blind_read is not None else None,
    )


def _case_view(prediction: Prediction) -> CaseView:
    session = object_session(prediction)
    assert session is not None  # views are built inside the action's transaction
    return CaseView(
        id=prediction.id,
        file_name=prediction.image.file_name,
        image_path=repository.image_path(prediction.image),
        predicted_label=prediction.predicted_label,
        p_normal=prediction.p_normal,
        p_pneumonia=prediction.p_pneumonia,
        threshold=prediction.threshold,
        model_version=model_version(prediction.model.arch, prediction.model.sha256),
        created_at=prediction.created_at,
        reviews=[_review_view(r) for r in prediction.reviews],
        image_id=prediction.image_id,
        out_of_domain=prediction.out_of_domain,
        domain_score=prediction.domain_score,
        original_label=prediction.image.original_label,
        doubt=_doubt(prediction),
        resolution=_resolution_text(repository.resolution_of_image(session, prediction.image_id)),
    )


def _resolution_text(resolution: repository.Resolution | None) -> str:
    if resolution is None:
        return ""
    return f"Resolved label: {resolution.label or 'none yet'} ({resolution.provenance})"


def _doubt(prediction: Prediction) -> str:
    issue = prediction.label_issue
    if issue is None:
        return ""
    return (
        f"Training image labelled {issue.given_label}; suspected label error #{issue.rank} "
        f"(out-of-fold probability of {issue.given_label}: {issue.p_given_label:.3f}, {issue.method})"
    )


def load_queue(engine: Engine, filters: QueueFilters | None = None, limit: int = 100) -> list[CaseView]:
    """Cases to review: unreviewed first, then most uncertain."""
    return read(engine, lambda s: [_case_view(p) for p in repository.review_queue(s, filters, limit)])


def load_audit_case(engine: Engine, filters: QueueFilters | None = None) -> CaseView | None:
    """A case drawn at random (an audit case, not chosen by the model's score), or ``None``."""

    def action(session: Session) -> CaseView | None:
        drawn = repository.random_audit_case(session, filters)
        return _case_view(drawn) if drawn is not None else None

    return read(engine, action)


def load_case(engine: Engine, prediction_id: int) -> CaseView:
    """One case with its review history.

    Raises:
        ValidationError: no such prediction.
    """
    return read(engine, lambda s: _case_view(repository.get_prediction(s, prediction_id)))


def submit_review(
    engine: Engine,
    prediction_id: int,
    reviewer: str,
    agrees: bool,
    corrected_label: str | None = None,
    confidence: str = "high",
    notes: str = "",
    reviewer_verified: bool = False,
    blind_read_id: int | None = None,
    selection: str = "outside",
    domain_confirmed: bool = False,
) -> ReviewView:
    """Record a review (validated before anything is written).

    A ``corrected_label`` of ``core.labels.UNUSABLE`` answers "not a usable chest X-ray".

    Args:
        reviewer_verified: the name came from sign-in; a typed name is stored as unverified.
        blind_read_id: the reviewer's blind read of this case, when the review follows one (an aided call).
        selection: how the case was chosen: ``"queue"``, ``"audit"`` or ``"outside"`` (see
            :data:`db.repository.SELECTIONS`).
    """
    with transaction(engine) as session:
        review = repository.add_review(
            session,
            prediction_id,
            reviewer,
            agrees,
            corrected_label,
            confidence,
            notes,
            reviewer_verified=reviewer_verified,
            blind_read_id=blind_read_id,
            selection=selection,
            domain_confirmed=domain_confirmed,
        )
        session.refresh(review, ["prediction"])
        return _review_view(review)


@dataclass(frozen=True)
class ReviewedCase:
    """An image with a resolved label from the reviewers (ground truth for site figures)."""

    image_sha256: str
    image_path: Path
    file_name: str
    label: str
    """Resolved label: the adjudicated label, else the majority of reviewers' latest calls."""
    review_ids: tuple[int, ...]
    prediction_id: int
    """The newest prediction of this image by the model version asked for."""
    created_at: datetime
    chosen_by_score: bool = False
    """Every review behind the label came from the uncertainty queue: the case is not a sample of the site."""


def reviews_fingerprint(engine: Engine) -> tuple[int, int, int]:
    """``(reviews, newest review id, newest adjudication id)``: changes whenever a resolved label may have."""

    def action(session: Session) -> tuple[int, int, int]:
        count, newest = session.execute(select(func.count(Review.id), func.max(Review.id))).one()
        adjudicated = session.scalar(select(func.max(Adjudication.id)))
        return int(count), int(newest or 0), int(adjudicated or 0)

    return read(engine, action)


def reviewed_cases(engine: Engine, model_sha256: str | None = None) -> list[ReviewedCase]:
    """Resolved reviewed images, oldest first; ties are left out.

    Args:
        model_sha256: only images this model version predicted (any version when ``None``).
    """

    def action(session: Session) -> list[ReviewedCase]:
        cases = []
        for calls, resolution in repository.resolutions(session).values():
            label = resolution.label
            if not label or not calls:
                continue
            image = next(iter(calls.values())).prediction.image
            predictions = [
                p
                for p in image.predictions
                if (model_sha256 is None or p.model.sha256 == model_sha256)
                and p.channel != repository.TRAINING_DATA_CHANNEL  # training images are not site cases
            ]
            if not predictions:
                continue
            newest = max(predictions, key=lambda p: p.id)
            if newest.out_of_domain and not any(r.domain_confirmed for r in calls.values()):
                continue  # flagged out of domain and no reviewer has confirmed it is a usable chest X-ray
            cases.append(
                ReviewedCase(
                    image.sha256,
                    repository.image_path(image),
                    image.file_name,
                    label,
                    tuple(sorted(r.id for r in calls.values())),
                    newest.id,
                    newest.created_at,
                    all(r.selection == "queue" for r in calls.values()),
                )
            )
        return sorted(cases, key=lambda c: c.prediction_id)

    return read(engine, action)
