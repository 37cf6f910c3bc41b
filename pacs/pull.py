"""Pull radiographs from the PACS, predict and log each through the existing path, push the results back.

Each instance goes through the same input checks and DICOM gate as an upload
(``service.predictions.predict_and_log``: frontal chest CR / DX only, identifying tags never
stored) and gets the out-of-domain flag. An instance already logged is skipped. Results that
could not be pushed stay marked unpushed and go on the next run; nothing is lost.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Engine

from pacs import results
from pacs.client import InstanceRef, PacsClient, PacsError
from service import pacs_store
from service.predictions import ImageLoadError, LoggedPrediction, predict_and_log

if TYPE_CHECKING:
    from core.inference import Prediction as CorePrediction
    from core.inference import Predictor


@dataclass
class PullReport:
    """What one pull did."""

    logged: list[int] = field(default_factory=list)
    """Prediction ids of the instances logged this time."""
    skipped: int = 0
    """Instances logged before (never logged twice)."""
    refused: list[str] = field(default_factory=list)
    """One line per instance the input checks refused (lateral views, bad DICOM...)."""
    pushed: int = 0
    push_errors: list[str] = field(default_factory=list)
    reviews_pushed: int = 0


def _bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def pull(
    engine: Engine,
    client: PacsClient,
    predictor: Predictor,
    since: date | None = None,
    study_uid: str | None = None,
    push: bool = True,
) -> PullReport:
    """Pull, predict, log and (unless ``push`` is off) push results and pending review SRs.

    Raises:
        PacsError: the PACS cannot be searched (nothing was logged then).
    """
    report = PullReport()
    for ref in list(client.find_radiographs(since, study_uid)):
        if pacs_store.is_logged(engine, ref.sop_uid):
            report.skipped += 1
            continue
        try:
            dataset = client.retrieve(ref)
            logged = predict_and_log(engine, predictor, _bytes(dataset), f"{ref.sop_uid}.dcm", channel="pacs")
        except (PacsError, ImageLoadError) as error:
            report.refused.append(f"{ref.sop_uid}: {str(error).splitlines()[0][:200]}")
            continue
        except Exception as error:  # a dataset pydicom cannot even write back: refused, the pull goes on
            report.refused.append(f"{ref.sop_uid}: unreadable DICOM ({type(error).__name__})")
            continue
        pacs_store.record_pulled(engine, logged.prediction_id, ref.study_uid, ref.series_uid, ref.sop_uid)
        report.logged.append(logged.prediction_id)
        if push:
            try:
                push_result(engine, client, predictor, dataset, logged, ref)
                report.pushed += 1
            except PacsError as error:
                report.push_errors.append(str(error))
    if push:
        report.pushed += push_pending(engine, client, predictor, report)
        report.reviews_pushed = push_reviews(engine, client, report)
    return report


def push_result(
    engine: Engine,
    client: PacsClient,
    predictor: Predictor,
    source: Dataset,
    logged: LoggedPrediction,
    ref: InstanceRef,
) -> None:
    """Store the measurement report and the heat-map secondary capture of one prediction in the PACS.

    Raises:
        PacsError: the PACS refused them (the instance stays marked unpushed).
    """
    from core.explain import gradcam, overlay

    result = logged.result
    sr = results.result_sr(
        source, result.label, result.p_pneumonia, result.threshold, logged.model_version, result.out_of_domain
    )
    picture = overlay(logged.image, gradcam(predictor, logged.image, result.label))
    sc = results.overlay_sc(source, picture)
    client.store([sr, sc])
    pacs_store.mark_pushed(engine, ref.sop_uid, sr.SOPInstanceUID, sr.SeriesInstanceUID, sc.SOPInstanceUID)


def push_pending(engine: Engine, client: PacsClient, predictor: Predictor, report: PullReport) -> int:
    """Push the results of instances logged earlier whose push failed; returns how many went."""
    from core.images import load_image

    done = 0
    for row in pacs_store.worklist(engine, only_unpushed=True):
        if row.prediction_id in report.logged:
            continue  # tried a moment ago
        ref = InstanceRef(row.study_uid, row.series_uid, row.sop_uid, "", "")
        try:
            source = client.retrieve(ref)
            image = load_image(_bytes(source), name=row.sop_uid)
            logged = LoggedPrediction(row.prediction_id, 0, _as_logged(row), row.model_version, image)
            push_result(engine, client, predictor, source, logged, ref)
            done += 1
        except (PacsError, ImageLoadError) as error:
            report.push_errors.append(str(error).splitlines()[0])
    return done


def _as_logged(row: pacs_store.WorklistRow) -> CorePrediction:
    """The prediction as it was logged (the SR reports what the clinician saw, not a re-run)."""
    from core.inference import Prediction

    p = row.p_pneumonia
    return Prediction(
        label=row.label,
        confidence=p if row.label == "PNEUMONIA" else 1 - p,
        probabilities={"NORMAL": 1 - p, "PNEUMONIA": p},
        threshold=row.threshold,
        image_name=row.sop_uid,
        out_of_domain=row.out_of_domain,
    )


def push_reviews(engine: Engine, client: PacsClient, report: PullReport | None = None) -> int:
    """Store a review SR for every review of a pushed result that has none yet; returns how many went."""
    done = 0
    for item in pacs_store.reviews_to_push(engine):
        try:
            first = client.retrieve_uid(item.study_uid, item.result_sr_series_uid, item.result_sr_uid)
            client.store([results.review_sr(first, item.decision, item.final_label, item.reviewer, item.model_version)])
        except PacsError as error:
            if report is not None:
                report.push_errors.append(str(error))
            continue
        pacs_store.mark_reviews_pushed(engine, item.sop_uid, item.index + 1)
        done += 1
    return done


def read_dicom(data: bytes) -> Dataset:
    """A dataset from bytes (for tests and tools)."""
    return dcmread(io.BytesIO(data))
