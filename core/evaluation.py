"""Scoring a labelled set of images with a checkpoint, and the evaluation report.

Used by ``python -m training.evaluate`` and by the dashboard's Metrics page
(with a progress callback), so both produce the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from core.data import ImageRecord
from core.images import ImageLoadError, load_image
from core.inference import TTA_VIEWS, Predictor
from core.metrics import bootstrap_intervals, classification_report, expected_calibration_error
from core.transforms import eval_transform


class _TolerantDataset(Dataset):
    """Yields ``(tensor, label, index, error)``; unreadable images carry an error string."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Any], torch.Tensor], size: int,
                 views: int = 1):
        self.records, self.transform, self.size, self.views = list(records), transform, size, views

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        try:
            return self.transform(load_image(record.path)), record.label, index, ""
        except ImageLoadError as error:
            return torch.zeros(self.views, 3, self.size, self.size), record.label, index, str(error)


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
) -> tuple[list[dict[str, Any]], list[str]]:
    """Calibrated P(PNEUMONIA) for each readable record.

    Args:
        progress: called with ``(done, total)`` after each batch (the dashboard's bar).
        root: paths in the result are made relative to this folder (portable reports).

    Returns:
        ``(predictions, errors)``: one ``{"path", "label", "p_pneumonia"}`` per
        readable image, and one line per unreadable one.
    """
    meta = predictor.meta
    base = eval_transform(meta.image_size, meta.mean, meta.std)
    views = TTA_VIEWS if predictor.tta else TTA_VIEWS[:1]

    def transform(image):  # (views, 3, H, W); averaged below when TTA is on
        return torch.stack([base(view(image)) for view in views])

    dataset = _TolerantDataset(records, transform, meta.image_size, len(views))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    predictions, errors, done = [], [], 0
    with torch.inference_mode():
        for images, labels, indices, failures in tqdm(loader, desc="evaluate", unit="batch",
                                                       disable=not show_progress):
            n, v = images.shape[:2]
            flat = images.reshape(n * v, *images.shape[2:]).to(predictor.device, memory_format=torch.channels_last)
            logits = predictor.model(flat).float().cpu().reshape(n, v, -1).mean(1)
            probabilities = predictor.proba_from_logits(logits)
            uncalibrated = torch.softmax(logits, 1)[:, 1].numpy()
            rows = zip(probabilities[:, 1], uncalibrated, labels, indices, failures, strict=True)
            for p, raw, label, index, failure in rows:
                if failure:
                    errors.append(failure)
                    continue
                record = records[int(index)]
                predictions.append({"path": _relative(record.path, root), "label": int(label), "p_pneumonia": float(p),
                                    "p_pneumonia_uncalibrated": float(raw), "patient_id": record.patient_id})
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
    report["brier_uncalibrated"] = float(np.mean((raw - labels) ** 2))
    if bootstrap and len(set(labels.tolist())) == 2:
        report["confidence_intervals"] = bootstrap_intervals(labels, scores, predictor.threshold, bootstrap)
    report.update(
        {
            "n_patients": len({p["patient_id"] for p in predictions}),
            "data_dir": str(data_dir),
            "tta": predictor.tta,
            "checkpoint": {"path": predictor.checkpoint_path, "sha256": predictor.checkpoint_sha256,
                           "arch": predictor.meta.arch, "temperature": predictor.meta.temperature,
                           "threshold_goal": predictor.meta.threshold_goal},
            "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "predictions": predictions,
        }
    )
    return report
