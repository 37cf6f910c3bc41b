"""Whole user actions, each one transaction: what the pages and the CLI call.

``predict_and_log`` decodes an upload, predicts with the loaded model, and stores
image + prediction together; if any step fails, nothing is written.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import Engine

from core.dicom import is_dicom
from core.input_checks import load_xray
from core.inference import Prediction as CorePrediction
from core.inference import Predictor
from db import repository
from db.engine import session_scope
from db.settings import image_store_dir

EXPORT_COLUMNS = [
    "image_sha256", "file_name", "stored_path", "original_label", "model_label", "p_pneumonia",
    "model_version", "reviewer_calls", "n_reviewers", "disagreement", "resolved_label",
]


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
    source: str = "dashboard",
    original_label: str | None = None,
    threshold: float | None = None,
) -> LoggedPrediction:
    """Decode, predict, and store the image and prediction in one transaction.

    Args:
        threshold: operating point to use (default: the checkpoint's).

    DICOM uploads are stored as PNG pixels only, so no identifying tag reaches
    the image store or the database.

    Raises:
        core.images.ImageLoadError: the bytes are not a usable image, or not
            plausibly a chest X-ray (nothing stored).
    """
    image = load_xray(data, name=Path(file_name).name or "upload")
    if is_dicom(data):
        buffer = io.BytesIO()
        image.convert("L").save(buffer, format="PNG")
        data = buffer.getvalue()
    result = predictor.predict_one(image, source=file_name)
    if threshold is not None:
        result = predictor.relabel(result, threshold)
    with session_scope(engine) as session:
        image_row = repository.store_image(session, data, file_name, original_label)
        model = repository.get_or_create_model(
            session, predictor.checkpoint_sha256, Path(predictor.checkpoint_path).name, predictor.meta.arch
        )
        row = repository.log_prediction(
            session, image=image_row, model=model, p_pneumonia=result.p_pneumonia,
            threshold=result.threshold, source=source,
        )
        return LoggedPrediction(row.id, image_row.id, result, predictor.version, image)


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
    with session_scope(engine) as session:
        rows = repository.relabel_rows(session, only_disagreements)
    handle = output if isinstance(output, io.StringIO) else open(output, "w", newline="", encoding="utf-8")
    try:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if handle is not output:
            handle.close()
    if images_dir is not None:
        export_image_folder(rows, Path(images_dir))
    return len(rows)


def export_image_folder(rows: list[dict[str, Any]], root: Path) -> int:
    """Copy each resolved image into ``root/<LABEL>/``; unresolved rows are skipped."""
    written = 0
    for row in rows:
        if not row["resolved_label"]:
            continue
        name = Path(row["file_name"]).name or "image"
        target = root / row["resolved_label"] / name
        if target.exists():  # a different image with the same name: keep both
            target = target.with_name(f"{target.stem}_{row['image_sha256'][:12]}{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image_store_dir() / row["stored_path"], target)
        written += 1
    return written
