"""Repository functions: each takes a session and does one piece of one user action.

Callers wrap a whole action in :func:`db.engine.session_scope`, so a failure
anywhere leaves nothing half-written. Validation happens before any write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import Select, event, func, select
from sqlalchemy.orm import Session, selectinload

from core.checkpoint import model_version
from core.labels import CLASS_NAMES, UNUSABLE
from core.operating_point import validate_calibration
from core.serialization import strict_json
from db import audit, remote_images
from db.models import (
    Adjudication,
    BlindRead,
    Image,
    ModelPromotion,
    ModelVersion,
    Prediction,
    Review,
    SuspectedLabelIssue,
    ThresholdChange,
)
from db.settings import image_store_dir

MAX_NOTES = 5000
MAX_REVIEWER = 100
MAX_FILE_NAME = 255
CONFIDENCE_LEVELS = ("high", "medium", "low", "unsure")


class ValidationError(ValueError):
    """Input the database refuses; nothing was written. The message is one line."""


def _label(value: str | None, what: str) -> str:
    text = (value or "").strip().upper()
    if text not in CLASS_NAMES:
        raise ValidationError(f"{what} must be NORMAL or PNEUMONIA, got {str(value)[:40]!r}")
    return text


def clean_name(value: str, what: str) -> str:
    """A required one-line name (a person, a study), validated like a reviewer's name."""
    return _clean_text(value, MAX_REVIEWER, what, required=True)


def clean_text(value: str, what: str) -> str:
    """Optional free text (notes, reasons), validated like review notes."""
    return _clean_text(value, MAX_NOTES, what, multiline=True)


def _clean_text(value: str, limit: int, what: str, required: bool = False, multiline: bool = False) -> str:
    if not isinstance(value, str) and value is not None:
        raise ValidationError(f"{what} must be text")
    allowed = {"\n", "\t", "\r"} if multiline else set()
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value or ""):
        raise ValidationError(f"{what} contains control characters")
    text = (value or "").strip()
    if required and not text:
        raise ValidationError(f"{what} must not be empty")
    if len(text) > limit:
        raise ValidationError(f"{what} is {len(text):,} characters; the limit is {limit:,}")
    return text


# ---------------------------------------------------------------- images and models


def store_image(
    session: Session,
    data: bytes,
    file_name: str,
    original_label: str | None = None,
    store_dir: Path | None = None,
    size: tuple[int, int] | None = None,
) -> Image:
    """Keep an image's bytes once per content hash and return its row.

    The file goes to ``<store>/<aa>/<sha256><ext>``: the path comes from the hash
    and the detected format, never from ``file_name``.

    Args:
        size: ``(width, height)`` when the caller has already decoded the image
            (saves decoding it again); else read from the header.
    """
    if not data:
        raise ValidationError("image is empty")
    digest = hashlib.sha256(data).hexdigest()
    existing = session.scalar(select(Image).where(Image.sha256 == digest))
    label = _label(original_label, "original label") if original_label else None  # validated before any write
    if existing is not None:
        if label and not existing.original_label:
            existing.original_label = label
            session.flush()
            audit.record(session, existing, "label", "store")
        _stage_file(session, Path(store_dir or image_store_dir()) / existing.storage_path, data)
        if remote_images.enabled():
            remote_images.put(data, digest)  # a no-op when the PACS has it; brings back one it lost
        return existing
    try:  # the header only: format and size, no pixel decoding
        with PILImage.open(io.BytesIO(data)) as probe:
            width, height = size or probe.size
            extension = {"JPEG": ".jpg", "PNG": ".png"}.get(probe.format or "", ".bin")
    except (OSError, ValueError, PILImage.DecompressionBombError):
        (width, height), extension = size or (0, 0), ".bin"  # e.g. DICOM: stored as-is
    relative = f"{digest[:2]}/{digest}{extension}"
    image = Image(
        sha256=digest,
        file_name=display_name(file_name),
        storage_path=relative,
        width=width,
        height=height,
        original_label=label,
    )
    session.add(image)
    session.flush()
    audit.record(session, image, "store", "store")
    _stage_file(session, Path(store_dir or image_store_dir()) / relative, data)
    if remote_images.enabled():  # the shared store: in the PACS before the row commits (a refusal fails both)
        remote_images.put(data, digest)
    return image


def _stage_file(session: Session, target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name now; rename it into the store when the transaction commits.

    A rollback (or a crash before the commit) leaves no file in the store, only
    possibly a ``.part`` file that ``python -m db check --fix`` removes.
    """
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = _part_file(target)
    staged.write_bytes(data)

    def publish(_session: Session) -> None:
        staged.replace(target)

    def discard(_session: Session) -> None:
        staged.unlink(missing_ok=True)

    event.listen(session, "after_commit", publish, once=True)
    event.listen(session, "after_rollback", discard, once=True)


def _part_file(target: Path) -> Path:
    """A temporary name beside ``target`` (``python -m db check --fix`` removes leftovers)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")


def display_name(file_name: str) -> str:
    """The uploaded name kept for display: its last path part, control characters shown as U+FFFD, at most 255."""
    name = PurePosixPath(str(file_name or "").replace("\\", "/")).name or "upload"
    name = "".join("\ufffd" if unicodedata.category(c) == "Cc" else c for c in name)
    if len(name) > MAX_FILE_NAME:
        raise ValidationError(f"file name is {len(name):,} characters; the limit is {MAX_FILE_NAME}")
    return name


def image_path(image: Image, store_dir: Path | None = None) -> Path:
    """Where an image's bytes are on disk."""
    path = Path(store_dir or image_store_dir()) / image.storage_path
    if remote_images.enabled() and not path.exists():  # another replica stored it: the local folder is a cache
        data = remote_images.fetch(image.sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = _part_file(path)
        staged.write_bytes(data)
        staged.replace(path)
    return path


def get_or_create_model(session: Session, sha256: str, name: str, arch: str) -> ModelVersion:
    """The model-version row for a checkpoint hash."""
    model = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == sha256))
    if model is None:
        model = ModelVersion(sha256=sha256, name=name[:255], arch=arch[:64])
        session.add(model)
        session.flush()
    return model


def list_models(session: Session) -> list[ModelVersion]:
    """Every model version that has made a prediction, newest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


# ---------------------------------------------------------------- predictions


def log_prediction(
    session: Session,
    *,
    image: Image,
    model: ModelVersion,
    p_pneumonia: float,
    threshold: float,
    predicted_label: str,
    channel: str = "dashboard",
    domain_score: float | None = None,
    out_of_domain: bool | None = None,
) -> Prediction:
    """Store one prediction as it was shown to the user (the label is the caller's, not re-derived), with
    its out-of-domain score and flag when the model has a detector."""
    if not 0.0 <= p_pneumonia <= 1.0 or not 0.0 <= threshold <= 1.0:
        raise ValidationError("probability and threshold must lie in [0, 1]")
    prediction = Prediction(
        image_id=image.id,
        model_id=model.id,
        p_normal=1.0 - float(p_pneumonia),
        p_pneumonia=float(p_pneumonia),
        threshold=float(threshold),
        predicted_label=_label(predicted_label, "predicted label"),
        channel=channel[:32],
        domain_score=None if domain_score is None else float(domain_score),
        out_of_domain=None if out_of_domain is None else bool(out_of_domain),
    )
    session.add(prediction)
    session.flush()
    audit.record(session, prediction, "predict", prediction.channel)
    return prediction


def get_prediction(session: Session, prediction_id: int) -> Prediction:
    """A prediction with its image, model and reviews, or :class:`ValidationError`."""
    prediction = session.scalar(
        select(Prediction)
        .where(Prediction.id == prediction_id)
        .options(selectinload(Prediction.image), selectinload(Prediction.model), selectinload(Prediction.reviews))
    )
    if prediction is None:
        raise ValidationError(f"no prediction with id {prediction_id}")
    return prediction


# ---------------------------------------------------------------- reviews


def add_review(
    session: Session,
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
) -> Review:
    """Record a reviewer's verdict; their earlier review of the same prediction is superseded, not changed.

    A corrected label of ``UNUSABLE`` says the image is not a usable chest X-ray. An image flagged out
    of domain counts in site figures and calibration only once a review has ``domain_confirmed`` (the
    reviewer confirms it is a usable chest X-ray despite the flag).

    Args:
        reviewer_verified: the name came from sign-in (a typed name is unverified).
        blind_read_id: the reviewer's blind read of this case that preceded this (aided) review.
        selection: how the case was chosen (:data:`SELECTIONS`): the review queue's uncertainty order,
            a random audit, or outside the queue (the default: a link, the command line, an import).

    Raises:
        ValidationError: unknown prediction, empty reviewer, bad label or
            confidence, notes too long. Nothing is written then.
    """
    reviewer = _clean_text(reviewer, MAX_REVIEWER, "reviewer name", required=True)
    notes = _clean_text(notes, MAX_NOTES, "notes", multiline=True)
    if not isinstance(agrees, bool):
        raise ValidationError(f"agrees must be True or False, got {str(agrees)[:20]!r}")
    confidence = _confidence(confidence)
    if selection not in SELECTIONS:
        raise ValidationError(f"selection must be one of {', '.join(SELECTIONS)}, got {str(selection)[:20]!r}")
    prediction = session.get(Prediction, prediction_id)
    if prediction is None:
        raise ValidationError(f"no prediction with id {prediction_id}")
    if agrees:
        corrected = None
    elif (corrected_label or "").strip().upper() == UNUSABLE:
        corrected = UNUSABLE
    else:
        corrected = _label(corrected_label, "corrected label")
        if corrected == prediction.predicted_label:
            raise ValidationError("a disagreeing review needs a label different from the model's")
    previous = session.scalar(
        select(Review)
        .where(Review.prediction_id == prediction_id, Review.reviewer == reviewer)
        .order_by(Review.id.desc())
        .limit(1)
    )
    review = Review(
        prediction_id=prediction_id,
        reviewer=reviewer,
        agrees=bool(agrees),
        corrected_label=corrected,
        confidence=confidence,
        notes=notes,
        supersedes_id=previous.id if previous else None,
        reviewer_verified=bool(reviewer_verified),
        blind_read_id=_own_blind_read(session, blind_read_id, prediction_id, reviewer),
        selection=selection,
        domain_confirmed=bool(domain_confirmed) and corrected != UNUSABLE,
    )
    session.add(review)
    session.flush()
    audit.record(session, review, "review", reviewer)
    return review


def _confidence(value: str) -> str:
    confidence = (value or "").strip().lower()
    if confidence not in CONFIDENCE_LEVELS:
        raise ValidationError(f"confidence must be one of {', '.join(CONFIDENCE_LEVELS)}")
    return confidence


def _own_blind_read(session: Session, blind_read_id: int | None, prediction_id: int, reviewer: str) -> int | None:
    if blind_read_id is None:
        return None
    blind = session.get(BlindRead, blind_read_id)
    if blind is None or blind.prediction_id != prediction_id or blind.reviewer != reviewer:
        raise ValidationError("the blind read does not belong to this reviewer and case")
    return blind.id


def add_blind_read(
    session: Session, prediction_id: int, reviewer: str, label: str, confidence: str, reviewer_verified: bool = False
) -> BlindRead:
    """Record a reviewer's own call on a case made before the model's output was shown."""
    reviewer = _clean_text(reviewer, MAX_REVIEWER, "reviewer name", required=True)
    blind = BlindRead(
        prediction_id=_existing_prediction(session, prediction_id).id,
        reviewer=reviewer,
        reviewer_verified=bool(reviewer_verified),
        label=_label(label, "your call"),
        confidence=_confidence(confidence),
    )
    session.add(blind)
    session.flush()
    audit.record(session, blind, "blind_read", reviewer)
    return blind


def latest_blind_read(session: Session, prediction_id: int, reviewer: str) -> BlindRead | None:
    """The reviewer's newest blind read of a case, if any."""
    return session.scalar(
        select(BlindRead)
        .where(BlindRead.prediction_id == prediction_id, BlindRead.reviewer == reviewer.strip())
        .order_by(BlindRead.id.desc())
        .limit(1)
    )


def _existing_prediction(session: Session, prediction_id: int) -> Prediction:
    prediction = session.get(Prediction, prediction_id)
    if prediction is None:
        raise ValidationError(f"no prediction with id {prediction_id}")
    return prediction


def add_adjudication(
    session: Session, image_id: int, adjudicator: str, label: str, reason: str, adjudicator_verified: bool = False
) -> Adjudication:
    """Record the final label of an image, with the reason (required)."""
    adjudicator = _clean_text(adjudicator, MAX_REVIEWER, "adjudicator name", required=True)
    if session.get(Image, image_id) is None:
        raise ValidationError(f"no image with id {image_id}")
    adjudication = Adjudication(
        image_id=image_id,
        adjudicator=adjudicator,
        adjudicator_verified=bool(adjudicator_verified),
        label=_label(label, "final label"),
        reason=_clean_text(reason, MAX_NOTES, "reason", required=True, multiline=True),
    )
    session.add(adjudication)
    session.flush()
    audit.record(session, adjudication, "adjudicate", adjudicator)
    return adjudication


def latest_adjudications(session: Session) -> dict[int, Adjudication]:
    """The adjudication in force (the newest) per image id."""
    rows = session.scalars(select(Adjudication).order_by(Adjudication.id))
    return {row.image_id: row for row in rows}


def review_history(session: Session, prediction_id: int) -> list[Review]:
    """Every review of a prediction, oldest first (superseded ones included)."""
    return list(session.scalars(select(Review).where(Review.prediction_id == prediction_id).order_by(Review.id)))


def _current_reviews_query() -> Select:
    """Each reviewer's latest review per prediction."""
    latest = select(func.max(Review.id).label("id")).group_by(Review.prediction_id, Review.reviewer).subquery()
    return select(Review).join(latest, Review.id == latest.c.id)


def current_reviews(session: Session) -> list[Review]:
    """Reviews not superseded by the same reviewer, with their predictions loaded."""
    return list(session.scalars(_current_reviews_query().options(selectinload(Review.prediction))))


# ---------------------------------------------------------------- dashboard queries


@dataclass
class QueueFilters:
    """Filters of the review queue; ``None`` means any."""

    model_id: int | None = None
    predicted_label: str | None = None
    reviewer: str | None = None
    """Only predictions this reviewer has not reviewed yet."""
    since: datetime | None = None
    until: datetime | None = None
    include_reviewed: bool = True
    training_data: bool = False
    """The "Training data" queue (images ``training.label_issues`` doubts) instead of predictions."""


SELECTIONS = ("queue", "audit", "outside")
"""How a reviewed case was chosen; only ``"queue"`` is chosen by the model's score."""

TRAINING_DATA_CHANNEL = "training_data"
"""Channel of predictions made to queue a training image whose label is doubted."""


def _filtered(query: Select, filters: QueueFilters) -> Select:
    """``query`` over predictions narrowed by the queue filters (all but ``include_reviewed``)."""
    if filters.training_data:
        query = query.where(Prediction.channel == TRAINING_DATA_CHANNEL)
    else:
        query = query.where(Prediction.channel != TRAINING_DATA_CHANNEL)
    if filters.model_id is not None:
        query = query.where(Prediction.model_id == filters.model_id)
    if filters.predicted_label:
        query = query.where(Prediction.predicted_label == _label(filters.predicted_label, "label filter"))
    if filters.since is not None:
        query = query.where(Prediction.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Prediction.created_at <= filters.until)
    if filters.reviewer:
        mine = select(Review.prediction_id).where(Review.reviewer == filters.reviewer.strip())
        query = query.where(Prediction.id.not_in(mine))
    return query


def random_audit_case(session: Session, filters: QueueFilters | None = None) -> Prediction | None:
    """One prediction drawn at random among those the filters allow (not by score): an audit case."""
    query = _filtered(select(Prediction), filters or QueueFilters())
    return session.scalars(query.order_by(func.random()).limit(1)).first()


def review_queue(session: Session, filters: QueueFilters | None = None, limit: int = 50) -> list[Prediction]:
    """Predictions to review: unreviewed first, then most uncertain (``|p - threshold|`` smallest)."""
    filters = filters or QueueFilters()
    review_count = (
        select(Review.prediction_id, func.count(Review.id).label("n")).group_by(Review.prediction_id).subquery()
    )
    n_reviews = func.coalesce(review_count.c.n, 0)
    query = (
        select(Prediction)
        .outerjoin(review_count, review_count.c.prediction_id == Prediction.id)
        .options(selectinload(Prediction.image), selectinload(Prediction.model), selectinload(Prediction.reviews))
    )
    query = _filtered(query, filters)
    if not filters.include_reviewed:
        query = query.where(n_reviews == 0)
    query = query.order_by(
        (n_reviews > 0).asc(), func.abs(Prediction.p_pneumonia - Prediction.threshold).asc(), Prediction.id.asc()
    )
    return list(session.scalars(query.limit(limit)))


def feedback_summary(session: Session) -> dict[str, Any]:
    """Counts for the feedback page, over current (non-superseded) reviews.

    Returns:
        ``predictions``, ``reviewed_predictions``, ``reviews`` (current),
        ``disagreements``, ``per_reviewer`` ``{name: {"reviews", "disagreements"}}``
        and ``kappa`` (Cohen's kappa between the model's and reviewers' calls;
        ``None`` when undefined).
    """
    from sklearn.metrics import cohen_kappa_score

    everything = current_reviews(session)
    reviews = [r for r in everything if r.call != UNUSABLE]  # "not usable" answers are counted, not scored
    per_reviewer: dict[str, dict[str, int]] = {}
    for review in reviews:
        name = shown_name(review.reviewer, review.reviewer_verified)
        entry = per_reviewer.setdefault(name, {"reviews": 0, "disagreements": 0})
        entry["reviews"] += 1
        entry["disagreements"] += int(not review.agrees)
    model_calls = [r.prediction.predicted_label for r in reviews]
    reviewer_calls = [r.call for r in reviews]
    kappa = None
    if reviews and len(set(model_calls) | set(reviewer_calls)) > 1:
        value = cohen_kappa_score(model_calls, reviewer_calls, labels=list(CLASS_NAMES))
        kappa = None if value != value else float(value)
    return {
        "predictions": session.scalar(select(func.count(Prediction.id))) or 0,
        "reviewed_predictions": len({r.prediction_id for r in reviews}),
        "unusable": len({r.prediction.image_id for r in everything if r.call == UNUSABLE}),
        "reviews": len(reviews),
        "all_reviews": session.scalar(select(func.count(Review.id))) or 0,
        "disagreements": sum(not r.agrees for r in reviews),
        "per_reviewer": per_reviewer,
        "kappa": kappa,
    }


def disagreements(session: Session) -> list[Review]:
    """Current reviews that disagree with the model, newest first."""
    return sorted(
        (r for r in current_reviews(session) if not r.agrees and r.call != UNUSABLE), key=lambda r: r.id, reverse=True
    )


# ---------------------------------------------------------------- relabel export


def resolve_label(calls: list[str]) -> str:
    """The majority of reviewers' calls; ``""`` when there are none or the top two tie."""
    ranked = Counter(calls).most_common()
    if not ranked:
        return ""
    return ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else ""


def shown_name(name: str, verified: bool) -> str:
    """A person's name as shown and exported: typed names are marked unverified."""
    return name if verified else f"{name} (unverified)"


@dataclass(frozen=True)
class Resolution:
    """An image's resolved label and where it came from."""

    label: str
    """Adjudicated label if any, else the majority of reviewers' latest calls; ``""`` on a tie."""
    method: str
    """``"adjudicated"``, ``"majority"``, ``"tie"`` or ``"reopened"`` (a later review disagrees with the
    adjudicated label: no label until it is adjudicated again)."""
    provenance: str
    """Human-readable: "adjudicated by X on DATE: reason" or "majority of A, B (2 of 3)"."""
    adjudication: Adjudication | None = None
    unusable_by: tuple[str, ...] = ()
    """Reviewers whose latest answer is "not a usable chest X-ray" (shown names)."""


def _naive(moment: datetime) -> datetime:
    """SQLite returns naive UTC times, PostgreSQL aware ones: compare them alike."""
    return moment.replace(tzinfo=None)


def resolve(
    calls: dict[str, Review], adjudication: Adjudication | None, unusable: dict[str, Review] | None = None
) -> Resolution:
    """The resolved label of one image from its reviewers' latest calls and the adjudication in force.

    Args:
        calls: each reviewer's latest NORMAL / PNEUMONIA call.
        unusable: each reviewer whose latest answer is "not a usable chest X-ray".
    """
    unusable = unusable or {}
    unusable_by = tuple(sorted(shown_name(n, r.reviewer_verified) for n, r in unusable.items()))
    if adjudication is None and unusable:
        top = max(Counter(r.call for r in calls.values()).values(), default=0)
        if len(unusable) > top:
            provenance = (
                f"not a usable chest X-ray: {', '.join(unusable_by)} ({len(unusable)} of {len(calls) + len(unusable)})"
            )
            return Resolution("", "unusable", provenance, None, unusable_by)
    resolution = _resolve_label(calls, adjudication)
    return dataclasses.replace(resolution, unusable_by=unusable_by) if unusable_by else resolution


def _resolve_label(calls: dict[str, Review], adjudication: Adjudication | None) -> Resolution:
    if adjudication is not None:
        who = shown_name(adjudication.adjudicator, adjudication.adjudicator_verified)
        when = adjudication.created_at.strftime("%Y-%m-%d %H:%M")
        later = sorted(
            shown_name(name, review.reviewer_verified)
            for name, review in calls.items()
            if _naive(review.created_at) >= _naive(adjudication.created_at) and review.call != adjudication.label
        )
        if later:  # the same rule re-queues the case for adjudication: no label until it is adjudicated again
            provenance = (
                f"re-opened: {', '.join(later)} called it otherwise after {adjudication.label} was adjudicated by "
                f"{who} on {when} UTC; needs adjudication again"
            )
            return Resolution("", "reopened", provenance, adjudication)
        provenance = f"adjudicated by {who} on {when} UTC: {adjudication.reason}"
        return Resolution(adjudication.label, "adjudicated", provenance, adjudication)
    label = resolve_label([r.call for r in calls.values()])
    if not label:
        return Resolution("", "tie", f"tie between {len(calls)} reviewer(s); needs adjudication")
    voters = sorted(shown_name(n, r.reviewer_verified) for n, r in calls.items() if r.call == label)
    return Resolution(label, "majority", f"majority of {', '.join(voters)} ({len(voters)} of {len(calls)})")


def resolution_of_image(session: Session, image_id: int) -> Resolution | None:
    """One image's resolution (``None`` when nobody has reviewed or adjudicated it)."""
    query = select(Review).join(Prediction).where(Prediction.image_id == image_id).order_by(Review.id)
    latest = {review.reviewer: review for review in session.scalars(query)}  # the latest per reviewer wins
    adjudication = session.scalar(
        select(Adjudication).where(Adjudication.image_id == image_id).order_by(Adjudication.id.desc()).limit(1)
    )
    if not latest and adjudication is None:
        return None
    calls, unusable = _split_unusable(latest)
    return resolve(calls, adjudication, unusable)


def _split_unusable(latest: dict[str, Review]) -> tuple[dict[str, Review], dict[str, Review]]:
    """Label calls and "not usable" answers, each reviewer's latest."""
    calls = {name: r for name, r in latest.items() if r.call != UNUSABLE}
    return calls, {name: r for name, r in latest.items() if r.call == UNUSABLE}


def resolutions(session: Session) -> dict[int, tuple[dict[str, Review], Resolution]]:
    """Every reviewed or adjudicated image id -> (each reviewer's latest NORMAL / PNEUMONIA call, its
    resolution). "Not usable" answers are left out of the calls and counted in the resolution."""
    latest = _latest_by_image(session)
    adjudicated = latest_adjudications(session)
    out = {}
    for image_id in sorted(set(latest) | set(adjudicated)):
        calls, unusable = _split_unusable(latest.get(image_id, {}))
        out[image_id] = (calls, resolve(calls, adjudicated.get(image_id), unusable))
    return out


def _latest_by_image(session: Session) -> dict[int, dict[str, Review]]:
    by_image: dict[int, dict[str, Review]] = {}
    for review in sorted(current_reviews(session), key=lambda r: r.id):
        by_image.setdefault(review.prediction.image_id, {})[review.reviewer] = review
    return by_image


def latest_calls_by_image(session: Session) -> dict[int, dict[str, Review]]:
    """For each reviewed image: each reviewer's newest NORMAL / PNEUMONIA review of any prediction of it."""
    by_image = {image: _split_unusable(latest)[0] for image, latest in _latest_by_image(session).items()}
    return {image: calls for image, calls in by_image.items() if calls}


def relabel_rows(session: Session, only_disagreements: bool = False) -> list[dict[str, Any]]:
    """One row per reviewed image: original label, the model's call, each reviewer's call, resolved label.

    The resolved label is the adjudicated label if any, else the majority of
    reviewers' current calls; a tie leaves it empty (training ignores it). Its
    provenance, and whether each name was verified by sign-in, go with it.
    """
    rows = []
    for image_id, (calls, resolution) in resolutions(session).items():
        image = session.get(Image, image_id)
        assert image is not None  # reviews reference images through a foreign key
        if not calls and resolution.method != "unusable":
            continue  # adjudicated without a review: nothing to export beside it
        latest_prediction = max(image.predictions, key=lambda p: p.id)
        disagreement = any(not r.agrees for r in calls.values())
        if only_disagreements and not disagreement:
            continue
        rows.append(
            {
                "image_sha256": image.sha256,
                "file_name": image.file_name,
                "stored_path": image.storage_path,
                "original_label": image.original_label or "",
                "model_label": latest_prediction.predicted_label,
                "p_pneumonia": round(latest_prediction.p_pneumonia, 6),
                "model_version": model_version(latest_prediction.model.arch, latest_prediction.model.sha256),
                "reviewer_calls": "; ".join(
                    [f"{shown_name(name, r.reviewer_verified)}:{r.call}" for name, r in sorted(calls.items())]
                    + [f"{name}:{UNUSABLE}" for name in resolution.unusable_by]
                ),
                "n_reviewers": len(calls) + len(resolution.unusable_by),
                "disagreement": disagreement,
                "resolved_label": resolution.label,
                "resolution": resolution.method,
                "provenance": resolution.provenance,
            }
        )
    return rows


# ---------------------------------------------------------------- thresholds


def record_threshold_change(
    session: Session,
    model: ModelVersion,
    threshold: float,
    changed_by: str,
    metrics: dict[str, Any],
    reason: str = "",
    temperature: float | None = None,
    bias: float | None = None,
    goal: str = "",
) -> ThresholdChange:
    """Log a new operating point: who, when, the metrics there, and optionally a new calibration.

    ``temperature``/``bias`` of ``None`` keep the checkpoint's calibration.
    """
    try:
        validate_calibration(threshold, 1.0 if temperature is None else temperature, bias or 0.0)
    except ValueError as error:
        raise ValidationError(str(error)) from None
    change = ThresholdChange(
        model_id=model.id,
        threshold=float(threshold),
        changed_by=_clean_text(changed_by, MAX_REVIEWER, "name", required=True),
        reason=_clean_text(reason, MAX_NOTES, "reason", multiline=True),
        metrics=strict_json(metrics),
        temperature=None if temperature is None else float(temperature),
        bias=None if bias is None else float(bias),
        goal=_clean_text(goal, 64, "goal"),
    )
    session.add(change)
    session.flush()
    audit.record(session, change, "set_operating_point", change.changed_by)
    return change


def latest_threshold_change(session: Session, model_sha256: str) -> ThresholdChange | None:
    """The most recently saved operating point for a model version, if any."""
    return session.scalar(
        select(ThresholdChange)
        .join(ModelVersion, ModelVersion.id == ThresholdChange.model_id)
        .where(ModelVersion.sha256 == model_sha256)
        .order_by(ThresholdChange.id.desc())
        .limit(1)
    )


def threshold_history(session: Session, model: ModelVersion) -> list[ThresholdChange]:
    """Every saved threshold for a model, newest first."""
    return list(
        session.scalars(
            select(ThresholdChange).where(ThresholdChange.model_id == model.id).order_by(ThresholdChange.id.desc())
        )
    )


# ---------------------------------------------------------------- promotions


def record_promotion(
    session: Session, model: ModelVersion, checkpoint_path: str, promoted_by: str, reason: str = ""
) -> ModelPromotion:
    """Log that a checkpoint is now the one in use."""
    promotion = ModelPromotion(
        model_id=model.id,
        checkpoint_path=_clean_text(checkpoint_path, 1024, "checkpoint path", required=True),
        promoted_by=_clean_text(promoted_by, MAX_REVIEWER, "name", required=True),
        reason=_clean_text(reason, MAX_NOTES, "reason", multiline=True),
    )
    session.add(promotion)
    session.flush()
    audit.record(session, promotion, "promote", promotion.promoted_by)
    return promotion


def promotions(session: Session, limit: int = 50) -> list[ModelPromotion]:
    """Promotions, newest first (the first is in force)."""
    query = select(ModelPromotion).options(selectinload(ModelPromotion.model)).order_by(ModelPromotion.id.desc())
    return list(session.scalars(query.limit(limit)))


# ---------------------------------------------------------------- suspected training-label errors


def add_label_issue(
    session: Session, prediction: Prediction, given_label: str, p_given_label: float, rank: int, method: str
) -> SuspectedLabelIssue:
    """Queue a training image whose given label the model doubts (its prediction is the case reviewers see)."""
    if not 0.0 <= p_given_label <= 1.0:
        raise ValidationError("probability of the given label must lie in [0, 1]")
    issue = SuspectedLabelIssue(
        image_id=prediction.image_id,
        prediction_id=prediction.id,
        given_label=_label(given_label, "given label"),
        p_given_label=float(p_given_label),
        rank=int(rank),
        method=_clean_text(method, 64, "method", required=True),
    )
    session.add(issue)
    session.flush()
    audit.record(session, issue, "queue_label_issue", method)
    return issue


def queued_label_issue_hashes(session: Session) -> set[str]:
    """Content hashes of training images already queued as suspected label errors."""
    query = select(Image.sha256).join(SuspectedLabelIssue, SuspectedLabelIssue.image_id == Image.id)
    return set(session.scalars(query))
