"""Scoring a labelled set of images with a checkpoint, and the evaluation report.

Used by ``python -m training.evaluate`` and by the dashboard's Metrics page
(with a progress callback), so both produce the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import brier_score_loss
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from core.data import ImageRecord
from core.images import ImageLoadError, load_image
from core.inference import Predictor
from core.metrics import bootstrap_intervals, classification_report, expected_calibration_error
from core.operating_point import OperatingPoint, logit


class _TolerantDataset(Dataset):
    """Yields ``(views, label, index, error)``; unreadable images carry an error string."""

    def __init__(
        self, records: Sequence[ImageRecord], predictor: Predictor, perturb: Callable[[Any], Any] | None = None
    ):
        self.records, self.predictor, self.perturb = list(records), predictor, perturb
        self.blank = torch.from_numpy(predictor.empty_views(1)[0]).zero_()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, str]:
        record = self.records[index]
        try:
            image = load_image(record.path)
            if self.perturb is not None:
                image = self.perturb(image)
            return self.predictor.view_tensors(image), record.label, index, ""
        except ImageLoadError as error:
            return self.blank, record.label, index, str(error)


def _relative(path: str, root: str | Path | None) -> str:
    if root is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return path


def score_records(
    predictor: Predictor,
    records: Sequence[ImageRecord],
    batch_size: int = 64,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    show_progress: bool = False,
    root: str | Path | None = None,
    perturb: Callable[[Any], Any] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Calibrated P(PNEUMONIA) for each readable record.

    Args:
        perturb: applied to each decoded image first (a :mod:`core.shifts` perturbation).
        progress: called with ``(done, total)`` after each batch (the dashboard's bar).
        root: paths in the result are made relative to this folder (portable reports).

    Returns:
        ``(predictions, errors)``: one ``{"path", "label", "p_pneumonia"}`` per
        readable image, and one line per unreadable one.
    """
    loader = DataLoader(_TolerantDataset(records, predictor, perturb), batch_size=batch_size, num_workers=workers)
    predictions: list[dict[str, Any]] = []
    errors: list[str] = []
    done = 0
    for views, labels, indices, failures in tqdm(loader, desc="evaluate", unit="batch", disable=not show_progress):
        logits = predictor.logits_from_views(views)
        probabilities = predictor.proba_from_logits(logits)
        uncalibrated = torch.softmax(logits, 1)[:, 1].numpy()
        margins = (logits[:, 1] - logits[:, 0]).numpy()
        rows = zip(probabilities[:, 1], uncalibrated, margins, labels, indices, failures, strict=True)
        for p, raw, margin, label, index, failure in rows:
            if failure:
                errors.append(failure)
                continue
            record = records[int(index)]
            predictions.append(
                {
                    "path": _relative(record.path, root),
                    "label": int(label),
                    "p_pneumonia": float(p),
                    "p_pneumonia_uncalibrated": float(raw),
                    "logit_margin": float(margin),
                    "patient_id": record.patient_id,
                }
            )
        done += len(labels)
        if progress:
            progress(done, len(records))
    return predictions, errors


def build_report(
    predictor: Predictor, predictions: list[dict[str, Any]], data_dir: str, bootstrap: int = 1000
) -> dict[str, Any]:
    """Metrics, confidence intervals and provenance for scored predictions."""
    labels = np.array([p["label"] for p in predictions])
    scores = np.array([p["p_pneumonia"] for p in predictions])
    report = classification_report(labels, scores, predictor.threshold)
    raw = np.array([p.get("p_pneumonia_uncalibrated", p["p_pneumonia"]) for p in predictions])
    report["ece_uncalibrated"] = expected_calibration_error(labels, raw)
    report["brier_uncalibrated"] = float(brier_score_loss(labels, raw, pos_label=1))
    if bootstrap and len(set(labels.tolist())) == 2:
        report["confidence_intervals"] = bootstrap_intervals(labels, scores, predictor.threshold, bootstrap)
    report.update(
        {
            "n_patients": len({p.get("patient_id", p["path"]) for p in predictions}),
            "data_dir": str(data_dir),
            "tta": predictor.tta,
            "checkpoint": {
                **predictor.describe(),
                "temperature": predictor.point.temperature,
                "threshold_goal": predictor.point.goal,
            },
            "operating_point": predictor.point.to_dict(),
            "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "predictions": predictions,
        }
    )
    return report


def predictions_at(
    predictions: list[dict[str, Any]], point: OperatingPoint, report_point: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A report's per-image predictions re-scored at another operating point.

    Uses each entry's raw ``logit_margin`` (or, in older reports, the logit of
    its uncalibrated probability). When ``point`` has the calibration the
    report was made with, the stored probabilities are returned unchanged.
    """
    if (
        report_point
        and report_point.get("temperature") == point.temperature
        and report_point.get("bias", 0.0) == point.bias
    ):
        return predictions
    rescored = []
    for row in predictions:
        margin = row.get("logit_margin")
        if margin is None:
            margin = logit(row.get("p_pneumonia_uncalibrated", row["p_pneumonia"]))
        rescored.append({**row, "p_pneumonia": float(point.p_pneumonia_from_margin(np.array([margin]))[0])})
    return rescored


def report_operating_point(report: dict[str, Any]) -> dict[str, Any]:
    """The calibration a report's probabilities were made with (older reports name only the temperature)."""
    return report.get("operating_point") or {
        "temperature": report.get("checkpoint", {}).get("temperature"),
        "bias": 0.0,
    }


STRESS_FIGURES = ("accuracy", "sensitivity", "specificity", "roc_auc", "ece")


def stress_report(
    predictor: Predictor,
    records: Sequence[ImageRecord],
    clean: dict[str, Any],
    names: Sequence[str],
    batch_size: int = 64,
    workers: int = 0,
    show_progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Figures under each named perturbation, at the operating point in force, and the drop from ``clean``.

    Returns:
        ``{name: {"accuracy", "sensitivity", "specificity", "roc_auc", "ece", "drop": {same keys}}}``;
        a drop is clean minus perturbed (positive = worse, except ECE where negative = worse).
    """
    from core.shifts import SHIFTS

    results: dict[str, dict[str, Any]] = {}
    for name in tqdm(names, desc="stress", unit="shift", disable=not show_progress):
        predictions, _ = score_records(predictor, records, batch_size, workers, perturb=SHIFTS[name])
        labels = np.array([p["label"] for p in predictions])
        scores = np.array([p["p_pneumonia"] for p in predictions])
        figures = classification_report(labels, scores, predictor.threshold)
        row = {key: figures[key] for key in STRESS_FIGURES}
        row["drop"] = {
            key: None if row[key] is None or clean.get(key) is None else float(clean[key] - row[key])
            for key in STRESS_FIGURES
        }
        results[name] = row
    return results
