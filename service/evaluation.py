"""Evaluation reports for the Metrics page: the stored report at the calibration in force, and another folder.

``core.evaluation`` and ``core.data`` pull in torch, so they are imported inside
the functions: a page that imports this module draws before the model loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db.settings import evaluation_roots

if TYPE_CHECKING:
    from core.inference import Predictor

__all__ = ["FolderEvaluation", "evaluate_folder", "evaluation_roots", "report_at_point_in_force"]


def report_at_point_in_force(report: dict[str, Any], predictor: Predictor, bootstrap: int = 200) -> dict[str, Any]:
    """The stored report re-scored at the predictor's calibration and threshold (a saved site point changes them).

    Returns ``report`` itself when it was made at that calibration already.
    """
    from core.evaluation import build_report, predictions_at, report_operating_point

    stored = report.get("predictions", [])
    predictions = predictions_at(stored, predictor.point, report_operating_point(report))
    if predictions is stored:
        return report
    return {
        **build_report(predictor, predictions, report.get("data_dir", ""), bootstrap=bootstrap),
        "n_patients": report.get("n_patients"),
    }


@dataclass
class FolderEvaluation:
    """A labelled folder scored by the model: its report (``None`` when nothing was readable) and skipped files."""

    report: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)
    n_images: int = 0


def evaluate_folder(
    predictor: Predictor,
    folder: str,
    progress: Callable[[int, int], Any] | None = None,
    bootstrap: int = 200,
) -> FolderEvaluation:
    """Score every image of ``folder`` (``NORMAL/`` and ``PNEUMONIA/`` inside one of :func:`evaluation_roots`).

    Raises:
        FileNotFoundError, ValueError, OSError: no such folder, outside the allowed roots, or no labelled images.
    """
    from core.data import folder_under_roots, scan_image_folder
    from core.evaluation import build_report, score_records

    records = scan_image_folder(folder_under_roots(folder, evaluation_roots()), confined=True)
    predictions, errors = score_records(predictor, records, batch_size=32, progress=progress, root=folder)
    report = build_report(predictor, predictions, folder, bootstrap=bootstrap) if predictions else None
    return FolderEvaluation(report, list(errors), len(records))


def report_beside(checkpoint: str | Path) -> Path:
    """Where a checkpoint's evaluation report lives (``best_model.pth`` -> ``best_model.json``)."""
    return Path(checkpoint).with_suffix(".json")
