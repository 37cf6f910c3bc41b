"""The store's side of PACS work: which instances were pulled, what was pushed back, and the triage worklist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from core.checkpoint import model_version
from db.models import PacsInstance, Prediction
from service.store import read, transaction


@dataclass(frozen=True)
class WorklistRow:
    """One pulled instance on the triage worklist."""

    prediction_id: int
    study_uid: str
    series_uid: str
    sop_uid: str
    label: str
    p_pneumonia: float
    threshold: float
    out_of_domain: bool | None
    model_version: str
    reviews: int
    pushed: bool
    reviews_pushed: int
    created_at: datetime


def is_logged(engine: Engine, sop_uid: str) -> bool:
    """True when this SOP Instance UID was pulled and logged already."""
    found = read(engine, lambda s: s.scalar(select(PacsInstance.id).where(PacsInstance.sop_instance_uid == sop_uid)))
    return found is not None


def record_pulled(engine: Engine, prediction_id: int, study_uid: str, series_uid: str, sop_uid: str) -> None:
    """Tie a logged prediction to the instance it came from."""
    with transaction(engine) as session:
        session.add(
            PacsInstance(
                sop_instance_uid=sop_uid[:64],
                study_instance_uid=study_uid[:64],
                series_instance_uid=series_uid[:64],
                prediction_id=prediction_id,
                reviews_pushed=0,
            )
        )


def mark_pushed(engine: Engine, sop_uid: str, sr_uid: str, sr_series_uid: str, sc_uid: str) -> None:
    """Record the result SR and the secondary capture stored in the PACS for an instance."""
    with transaction(engine) as session:
        row = _row(session, sop_uid)
        row.result_sr_uid, row.result_sr_series_uid, row.overlay_sc_uid = sr_uid, sr_series_uid, sc_uid


def mark_reviews_pushed(engine: Engine, sop_uid: str, count: int) -> None:
    """Record that the first ``count`` reviews of an instance's prediction have a review SR in the PACS."""
    with transaction(engine) as session:
        _row(session, sop_uid).reviews_pushed = count


def _row(session: Session, sop_uid: str) -> PacsInstance:
    row = session.scalar(select(PacsInstance).where(PacsInstance.sop_instance_uid == sop_uid))
    if row is None:
        raise KeyError(f"instance {sop_uid} was never pulled")
    return row


def worklist(engine: Engine, only_unpushed: bool = False) -> list[WorklistRow]:
    """Pulled instances, PNEUMONIA first, most probable first (triage order)."""

    def action(session: Session) -> list[WorklistRow]:
        rows = session.scalars(
            select(PacsInstance).options(
                selectinload(PacsInstance.prediction).selectinload(Prediction.reviews),
                selectinload(PacsInstance.prediction).selectinload(Prediction.model),
            )
        )
        out = []
        for row in rows:
            prediction = row.prediction
            if only_unpushed and row.result_sr_uid:
                continue
            out.append(
                WorklistRow(
                    prediction.id,
                    row.study_instance_uid,
                    row.series_instance_uid,
                    row.sop_instance_uid,
                    prediction.predicted_label,
                    prediction.p_pneumonia,
                    prediction.threshold,
                    prediction.out_of_domain,
                    model_version(prediction.model.arch, prediction.model.sha256),
                    len(prediction.reviews),
                    bool(row.result_sr_uid),
                    row.reviews_pushed,
                    row.created_at,
                )
            )
        return sorted(out, key=lambda r: (r.label != "PNEUMONIA", -r.p_pneumonia, r.prediction_id))

    return read(engine, action)


@dataclass(frozen=True)
class ReviewToPush:
    """A review whose decision about the AI result is not in the PACS yet."""

    sop_uid: str
    study_uid: str
    series_uid: str
    result_sr_uid: str
    result_sr_series_uid: str
    index: int
    """Position among the prediction's reviews (oldest first)."""
    reviewer: str
    decision: str
    """``accepted``, ``rejected`` (not a usable chest X-ray) or ``corrected``."""
    final_label: str
    model_version: str


def reviews_to_push(engine: Engine) -> list[ReviewToPush]:
    """Reviews of pulled, pushed instances that have no review SR yet, oldest first."""

    def action(session: Session) -> list[ReviewToPush]:
        out = []
        rows = session.scalars(select(PacsInstance).where(PacsInstance.result_sr_uid.is_not(None)))
        for row in rows:
            prediction = row.prediction
            for index, review in enumerate(prediction.reviews):
                if index < row.reviews_pushed:
                    continue
                decision = "accepted" if review.agrees else ("rejected" if review.call == "UNUSABLE" else "corrected")
                out.append(
                    ReviewToPush(
                        row.sop_instance_uid,
                        row.study_instance_uid,
                        row.series_instance_uid,
                        str(row.result_sr_uid),
                        str(row.result_sr_series_uid),
                        index,
                        review.reviewer,
                        decision,
                        review.call,
                        model_version(prediction.model.arch, prediction.model.sha256),
                    )
                )
        return out

    return read(engine, action)
