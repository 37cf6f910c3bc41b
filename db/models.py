"""Typed SQLAlchemy 2.0 models.

An ``Image`` is stored once per content hash; each ``Prediction`` ties an image to
a ``ModelVersion``; ``Review`` rows are append-only (a reviewer's later review
supersedes their earlier one, which stays as history); ``ThresholdChange`` records
who moved the operating point, when, and the metrics there.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware current time."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    """Name the file was uploaded under (display only; never used as a path)."""
    storage_path: Mapped[str] = mapped_column(String(512))
    """Path relative to the image store, derived from the hash."""
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    original_label: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    predictions: Mapped[list[Prediction]] = relationship(back_populates="image")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(255))
    arch: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True)
    p_normal: Mapped[float] = mapped_column(Float)
    p_pneumonia: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    predicted_label: Mapped[str] = mapped_column(String(16), index=True)
    channel: Mapped[str] = mapped_column(String(32), default="dashboard")
    """How the prediction was made: ``"dashboard"`` or ``"cli"``."""
    domain_score: Mapped[float | None] = mapped_column(Float, default=None)
    """Out-of-domain score (``core.domain``); ``None`` for older rows and models without a detector."""
    out_of_domain: Mapped[bool | None] = mapped_column(Boolean, default=None)
    """The image lay outside the training images: shown behind a warning, left out of site figures
    and calibration unless a reviewer confirms it."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    image: Mapped[Image] = relationship(back_populates="predictions")
    model: Mapped[ModelVersion] = relationship()
    reviews: Mapped[list[Review]] = relationship(back_populates="prediction", order_by="Review.id")
    label_issue: Mapped[SuspectedLabelIssue | None] = relationship(viewonly=True, uselist=False)
    """Set when the prediction was made to queue a doubted training label."""


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="RESTRICT"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100), index=True)
    agrees: Mapped[bool] = mapped_column(Boolean)
    corrected_label: Mapped[str | None] = mapped_column(String(16), default=None)
    confidence: Mapped[str] = mapped_column(String(16))
    notes: Mapped[str] = mapped_column(Text, default="")
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    reviewer_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when the name came from sign-in; a typed name is unverified."""
    blind_read_id: Mapped[int | None] = mapped_column(ForeignKey("blind_reads.id"), default=None)
    """The reviewer's own call made before seeing the model's output, when the read was blind."""
    selection: Mapped[str | None] = mapped_column(String(16), default=None)
    """How the case was chosen: ``"queue"`` (most uncertain first), ``"audit"`` (at random), ``"outside"``
    (a link, the command line, an import); ``None`` for reviews older than this record."""

    domain_confirmed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    """The reviewer confirmed that an image flagged out of domain is a usable chest X-ray."""

    prediction: Mapped[Prediction] = relationship(back_populates="reviews")
    blind_read: Mapped[BlindRead | None] = relationship()

    @property
    def call(self) -> str:
        """The label this reviewer says is right (``core.labels.UNUSABLE``: not a usable chest X-ray)."""
        return self.prediction.predicted_label if self.agrees else str(self.corrected_label)


class ThresholdChange(Base):
    __tablename__ = "threshold_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True)
    threshold: Mapped[float] = mapped_column(Float)
    changed_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    temperature: Mapped[float | None] = mapped_column(Float, default=None)
    """Calibration saved with the threshold; ``None`` keeps the checkpoint's."""
    bias: Mapped[float | None] = mapped_column(Float, default=None)
    goal: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelPromotion(Base):
    """A checkpoint made the one in use (append-only; the newest row is in force)."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True)
    checkpoint_path: Mapped[str] = mapped_column(String(1024))
    promoted_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[ModelVersion] = relationship()


class BlindRead(Base):
    """A reviewer's unaided call on a case, made before the model's output was shown (append-only)."""

    __tablename__ = "blind_reads"

    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="RESTRICT"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100), index=True)
    reviewer_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    prediction: Mapped[Prediction] = relationship()


class Adjudication(Base):
    """The final label of an image, set by an adjudicator with a reason (append-only; the newest is in force)."""

    __tablename__ = "adjudications"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    adjudicator: Mapped[str] = mapped_column(String(100))
    adjudicator_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    image: Mapped[Image] = relationship()


class SuspectedLabelIssue(Base):
    """A training image whose given label the model doubts, queued for review (``training.label_issues``)."""

    __tablename__ = "suspected_label_issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="RESTRICT"), index=True)
    given_label: Mapped[str] = mapped_column(String(16))
    p_given_label: Mapped[float] = mapped_column(Float)
    """Out-of-fold probability of the given label (low: the label is doubted)."""
    rank: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    image: Mapped[Image] = relationship()
    prediction: Mapped[Prediction] = relationship()


class AuditEntry(Base):
    """One link of the tamper-evident log: its hash covers the previous hash and this entry's content."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),)  # no forks

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    """Canonical JSON of the entity's recorded fields."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StoreIdentity(Base):
    """The database's one identity row: a random token made when the schema was created (or a backup
    taken). Each transaction checks it, so another database copied over the file is refused."""

    __tablename__ = "store_identity"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReaderStudy(Base):
    """A named reader study: a frozen set of cases read by named readers unaided, then aided after a washout."""

    __tablename__ = "reader_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_by: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str] = mapped_column(String(16))
    """``"adjudicated"`` (only adjudicated cases) or ``"resolved"`` (adjudicated, else the reviewers' majority)."""
    washout_days: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    """Seeds the case draw and each reader's reading order."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    cases: Mapped[list[StudyCase]] = relationship(order_by="StudyCase.position")
    readers: Mapped[list[StudyReader]] = relationship(order_by="StudyReader.id")


class StudyCase(Base):
    """One case of a study, with the reference label frozen when the study was made."""

    __tablename__ = "study_cases"
    __table_args__ = (UniqueConstraint("study_id", "image_id", name="uq_study_case_image"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="RESTRICT"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"))
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="RESTRICT"))
    """The model's output shown in the aided session."""
    reference_label: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)

    image: Mapped[Image] = relationship()
    prediction: Mapped[Prediction] = relationship()


class StudyReader(Base):
    """A reader named when the study was made."""

    __tablename__ = "study_readers"
    __table_args__ = (UniqueConstraint("study_id", "reader", name="uq_study_reader"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="RESTRICT"), index=True)
    reader: Mapped[str] = mapped_column(String(100))


class StudyRead(Base):
    """One reader's read of one study case in one session (final: a case is read once per session)."""

    __tablename__ = "study_reads"
    __table_args__ = (UniqueConstraint("case_id", "reader", "modality", name="uq_study_read"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("study_cases.id", ondelete="RESTRICT"), index=True)
    reader: Mapped[str] = mapped_column(String(100))
    modality: Mapped[str] = mapped_column(String(16))
    """``"unaided"`` (first session, no AI) or ``"aided"`` (after the washout, with the AI's output)."""
    rating: Mapped[int] = mapped_column(Integer)
    """1 definitely normal .. 5 definitely pneumonia; the call is PNEUMONIA from 3 up."""
    washout_override: Mapped[str] = mapped_column(Text, default="")
    """Why an aided read was made before the washout ended (empty when it was respected)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PacsInstance(Base):
    """A DICOM instance pulled from the PACS, the prediction made of it, and what was pushed back."""

    __tablename__ = "pacs_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    """An instance already logged is never logged again."""
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="RESTRICT"), index=True)
    result_sr_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    """The measurement report pushed to the PACS (``None``: not pushed yet)."""
    result_sr_series_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    overlay_sc_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    reviews_pushed: Mapped[int] = mapped_column(Integer, default=0)
    """How many of the prediction's reviews have a review SR in the PACS."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    prediction: Mapped[Prediction] = relationship()
