"""The use-case layer: every whole user action on the review store, one transaction each.

Pages and command lines call these functions; they get plain dataclasses back
and never see sessions, ORM objects or SQLAlchemy exceptions. Two error types
cross this boundary:

- :class:`StoreUnavailable`: the database or image store cannot be used (locked,
  missing, unreachable, read-only); nothing was saved.
- :class:`ValidationError`: input the store refuses; nothing was saved.

Model errors (``core.images.ImageLoadError``, ``core.checkpoint.CheckpointError``)
pass through unchanged, so callers can tell them apart.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image as PILImage
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, object_session

from core.checkpoint import model_version
from core.dicom import is_dicom
from core.inference import Prediction as CorePrediction
from core.inference import Predictor
from core.input_checks import load_xray
from core.operating_point import DATABASE, OperatingPoint, OperatingPointLookup
from core.serialization import csv_safe
from db import repository
from db.engine import DatabaseReplacedError, NewerSchemaError, has_schema, init_db, make_engine, session_scope
from db.models import Prediction, Review
from db.repository import QueueFilters, ValidationError
from db.settings import database_configured, image_store_dir

__all__ = [
    "QueueFilters",
    "StoreUnavailable",
    "ValidationError",
    "predict_and_log",
    "open_store",
    "register_model",
    "operating_point_lookup",
    "configured_store",
    "predictor_in_force",
    "save_operating_point",
    "list_models",
    "load_queue",
    "load_case",
    "submit_review",
    "feedback_view",
    "write_relabel_export",
    "reviewed_cases",
]

EXPORT_COLUMNS = [
    "image_sha256",
    "file_name",
    "stored_path",
    "original_label",
    "model_label",
    "p_pneumonia",
    "model_version",
    "reviewer_calls",
    "n_reviewers",
    "disagreement",
    "resolved_label",
    "resolution",
    "provenance",
]

T = TypeVar("T")

Store = Engine
"""The handle pages and commands hold for the review store (open it with :func:`open_store`)."""


class StoreUnavailable(RuntimeError):
    """The review database or image store cannot be used right now; nothing was saved. One-line message."""


def _store_message(error: Exception) -> str:
    if isinstance(error, OperationalError) and "locked" in str(error).lower():
        return "The database is busy (locked by another writer). Nothing was saved; please try again."
    cause = getattr(error, "orig", None)
    if isinstance(error, DatabaseReplacedError) or isinstance(cause, DatabaseReplacedError):
        return f"The review database is not available: {cause or error}"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return f"The review database is not available, nothing was saved: {first}"


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """:func:`db.engine.session_scope`, store failures turned into :class:`StoreUnavailable` (for ``db`` modules)."""
    try:
        with session_scope(engine) as session:
            yield session
    except (SQLAlchemyError, OSError) as error:
        raise StoreUnavailable(_store_message(error)) from error


def _read(engine: Engine, action: Callable[[Session], T]) -> T:
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


# ---------------------------------------------------------------- models and operating points


@dataclass(frozen=True)
class ModelInfo:
    """A model version known to the store."""

    id: int
    sha256: str
    name: str
    arch: str

    @property
    def version(self) -> str:
        """``arch@sha12``, as shown everywhere."""
        return model_version(self.arch, self.sha256)


def _model_row(session: Session, predictor: Predictor):  # noqa: ANN202 - ORM row stays inside this module
    return repository.get_or_create_model(
        session, predictor.checkpoint_sha256, Path(predictor.checkpoint_path).name, predictor.meta.arch
    )


def register_model(engine: Engine, predictor: Predictor) -> ModelInfo:
    """Make sure the predictor's model version is in the store; returns it."""

    def action(session: Session) -> ModelInfo:
        row = _model_row(session, predictor)
        return ModelInfo(row.id, row.sha256, row.name, row.arch)

    return _read(engine, action)


def list_models(engine: Engine) -> list[ModelInfo]:
    """Every model version in the store, newest first."""
    return _read(engine, lambda s: [ModelInfo(m.id, m.sha256, m.name, m.arch) for m in repository.list_models(s)])


def operating_point_lookup(engine: Engine) -> OperatingPointLookup:
    """A lookup for :func:`core.operating_point.operating_point_in_force` backed by this store."""

    def lookup(sha256: str, checkpoint_temperature: float) -> OperatingPoint | None:
        def action(session: Session) -> OperatingPoint | None:
            change = repository.latest_threshold_change(session, sha256)
            if change is None:
                return None
            temperature = checkpoint_temperature if change.temperature is None else change.temperature
            return OperatingPoint(
                threshold=change.threshold,
                temperature=temperature,
                bias=change.bias or 0.0,
                origin=DATABASE,
                goal=change.goal or "",
                change_id=change.id,
            )

        return _read(engine, action)

    return lookup


def configured_store() -> Engine | None:
    """The review store when one is configured (``$DATABASE_URL``, or the default file exists) and has a schema.

    Never creates a database.

    Raises:
        StoreUnavailable: a configured database cannot be read or migrated.
    """
    return _opened(None, create=False) if database_configured() else None


def predictor_in_force(engine: Engine, predictor: Predictor) -> Predictor:
    """The loaded model at the operating point in force for its version (the store's, else the checkpoint's)."""
    from core.operating_point import operating_point_in_force

    point = operating_point_in_force(predictor.meta, predictor.checkpoint_sha256, operating_point_lookup(engine))
    return predictor.at(point)


def save_operating_point(
    engine: Engine,
    predictor: Predictor,
    point: OperatingPoint,
    changed_by: str,
    metrics: dict[str, Any],
    reason: str = "",
) -> int:
    """Log ``point`` (threshold and calibration) as the one in force for the predictor's model version.

    Returns:
        The threshold change's id.
    """
    with transaction(engine) as session:
        model = _model_row(session, predictor)
        change = repository.record_threshold_change(
            session,
            model,
            point.threshold,
            changed_by,
            metrics,
            reason,
            temperature=point.temperature,
            bias=point.bias,
            goal=point.goal,
        )
        return change.id


# ---------------------------------------------------------------- predictions


@dataclass
class LoggedPrediction:
    """A prediction as shown to the user, with its database id."""

    prediction_id: int
    image_id: int
    result: CorePrediction
    model_version: str
    image: PILImage.Image
    """The decoded upload, so callers can show it without decoding again."""


def predict_and_log(
    engine: Engine,
    predictor: Predictor,
    data: bytes,
    file_name: str,
    channel: str = "dashboard",
    original_label: str | None = None,
) -> LoggedPrediction:
    """Decode, predict at the predictor's operating point, and store image + prediction in one transaction.

    DICOM uploads are stored as PNG pixels only, so no identifying tag reaches
    the image store or the database.

    Raises:
        core.images.ImageLoadError: the bytes are not a usable image, or not
            plausibly a chest X-ray (nothing stored).
        StoreUnavailable, ValidationError: nothing stored.
    """
    image = load_xray(data, name=Path(file_name).name or "upload")
    if is_dicom(data):
        buffer = io.BytesIO()
        image.convert("L").save(buffer, format="PNG")
        data = buffer.getvalue()
    result = predictor.predict_one(image, image_name=file_name)
    with transaction(engine) as session:
        image_row = repository.store_image(session, data, file_name, original_label, size=image.size)
        row = repository.log_prediction(
            session,
            image=image_row,
            model=_model_row(session, predictor),
            p_pneumonia=result.p_pneumonia,
            threshold=result.threshold,
            predicted_label=result.label,
            channel=channel,
        )
        return LoggedPrediction(row.id, image_row.id, result, predictor.version, image)


# ---------------------------------------------------------------- review queue and cases


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
    return _read(engine, lambda s: [_case_view(p) for p in repository.review_queue(s, filters, limit)])


def load_audit_case(engine: Engine, filters: QueueFilters | None = None) -> CaseView | None:
    """A case drawn at random (an audit case, not chosen by the model's score), or ``None``."""

    def action(session: Session) -> CaseView | None:
        drawn = repository.random_audit_case(session, filters)
        return _case_view(drawn) if drawn is not None else None

    return _read(engine, action)


def load_case(engine: Engine, prediction_id: int) -> CaseView:
    """One case with its review history.

    Raises:
        ValidationError: no such prediction.
    """
    return _read(engine, lambda s: _case_view(repository.get_prediction(s, prediction_id)))


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
) -> ReviewView:
    """Record a review (validated before anything is written).

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
        )
        session.refresh(review, ["prediction"])
        return _review_view(review)


# ---------------------------------------------------------------- feedback and export


@dataclass(frozen=True)
class FeedbackView:
    """What the Feedback page shows."""

    summary: dict[str, Any]
    disagreements: list[dict[str, Any]]


def feedback_view(engine: Engine) -> FeedbackView:
    """Counts, per-reviewer figures, kappa and the current disagreements (newest first)."""

    def action(session: Session) -> FeedbackView:
        rows = [
            {
                "prediction": r.prediction_id,
                "image": r.prediction.image.file_name,
                "model": r.prediction.predicted_label,
                "reviewer": repository.shown_name(r.reviewer, r.reviewer_verified),
                "reviewer says": r.corrected_label,
                "confidence": r.confidence,
                "notes": r.notes,
                "when": r.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for r in repository.disagreements(session)
        ]
        return FeedbackView(repository.feedback_summary(session), rows)

    return _read(engine, action)


def write_relabel_export(
    engine: Engine,
    output: str | Path | io.StringIO,
    only_disagreements: bool = False,
    images_dir: str | Path | None = None,
) -> int:
    """Write the relabel CSV (and optionally an ImageFolder tree by resolved label).

    Returns:
        Number of rows written.
    """
    rows = _read(engine, lambda s: repository.relabel_rows(s, only_disagreements))
    if isinstance(output, io.StringIO):
        _write_csv(output, rows)
    else:
        with open(output, "w", newline="", encoding="utf-8") as handle:
            _write_csv(handle, rows)
    if images_dir is not None:
        export_image_folder(rows, Path(images_dir))
    return len(rows)


def _write_csv(handle: Any, rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows({key: csv_safe(value) for key, value in row.items()} for row in rows)


SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def safe_file_name(name: str, image_sha256: str) -> str:
    """A file name safe to create anywhere: no path parts, no leading dot, plain characters, bounded length."""
    cleaned = SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name)[:150]
    if not cleaned.strip("._"):
        return f"image_{image_sha256[:12]}"
    return cleaned.lstrip(".")


def export_image_folder(rows: list[dict[str, Any]], root: Path) -> int:
    """Copy each resolved image into ``root/<LABEL>/``; unresolved rows are skipped."""
    written = 0
    for row in rows:
        if not row["resolved_label"]:
            continue
        target = root / row["resolved_label"] / safe_file_name(row["file_name"], row["image_sha256"])
        if target.exists():  # a different image with the same name: keep both
            target = target.with_name(f"{target.stem}_{row['image_sha256'][:12]}{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image_store_dir() / row["stored_path"], target)
        written += 1
    return written


# ---------------------------------------------------------------- reviewed cases (site adaptation)


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
    from sqlalchemy import func, select

    from db.models import Adjudication

    def action(session: Session) -> tuple[int, int, int]:
        count, newest = session.execute(select(func.count(Review.id), func.max(Review.id))).one()
        adjudicated = session.scalar(select(func.max(Adjudication.id)))
        return int(count), int(newest or 0), int(adjudicated or 0)

    return _read(engine, action)


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

    return _read(engine, action)
