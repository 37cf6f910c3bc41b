"""Predicting an upload and logging the image and the prediction in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.dicom import stored_bytes
from core.images import ImageLoadError
from core.input_checks import load_xray
from db import repository
from db.models import Image, Prediction
from service.known_models import model_row
from service.store import transaction

__all__ = ["ImageLoadError", "LoggedPrediction", "predict_and_log", "store_and_log"]

if TYPE_CHECKING:
    from core.inference import Prediction as CorePrediction
    from core.inference import Predictor


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
    data = stored_bytes(data, image)
    result = predictor.predict_one(image, image_name=file_name)
    with transaction(engine) as session:
        image_row, row = store_and_log(session, predictor, data, file_name, original_label, image.size, result, channel)
        return LoggedPrediction(row.id, image_row.id, result, predictor.version, image)


def store_and_log(
    session: Session,
    predictor: Predictor,
    data: bytes,
    file_name: str,
    original_label: str | None,
    size: tuple[int, int],
    result: CorePrediction,
    channel: str,
) -> tuple[Image, Prediction]:
    """Store the image bytes and log ``result`` for it, inside the caller's transaction."""
    image_row = repository.store_image(session, data, file_name, original_label, size=size)
    row = repository.log_prediction(
        session,
        image=image_row,
        model=model_row(session, predictor),
        p_pneumonia=result.p_pneumonia,
        threshold=result.threshold,
        predicted_label=result.label,
        channel=channel,
        domain_score=result.domain_score,
        out_of_domain=result.out_of_domain,
    )
    return image_row, row
