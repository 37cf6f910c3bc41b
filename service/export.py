"""The Feedback page's figures and the relabel export (CSV, optionally an ImageFolder tree)."""

from __future__ import annotations

import csv
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.serialization import csv_safe
from db import repository
from db.settings import image_store_dir
from service.store import read

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

    return read(engine, action)


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
    rows = read(engine, lambda s: repository.relabel_rows(s, only_disagreements))
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
