"""Evaluate a checkpoint on a labelled folder and write a JSON report.

    python -m training.evaluate --checkpoint models/best_model.pth \
        --data-dir DIR --output report.json

The report holds scikit-learn metrics at the checkpoint's threshold, bootstrap
95 % intervals, the ROC curve and one ``{"path", "label", "p_pneumonia"}`` entry
per image, so any figure can be recomputed without the images.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from core.checkpoint import CheckpointError
from core.data import ImageRecord, load_split, scan_image_folder
from core.images import ImageLoadError, load_image
from core.inference import Predictor
from core.metrics import bootstrap_intervals, classification_report
from core.transforms import eval_transform


class _TolerantDataset(Dataset):
    """Yields ``(tensor, label, index, error)``; unreadable images carry an error string."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Any], torch.Tensor], size: int):
        self.records, self.transform, self.size = list(records), transform, size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        try:
            return self.transform(load_image(record.path)), record.label, index, ""
        except ImageLoadError as error:
            return torch.zeros(3, self.size, self.size), record.label, index, str(error)


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the evaluation command."""
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description="Evaluate a checkpoint.")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--data-dir", required=True, help="ImageFolder root with NORMAL/ and PNEUMONIA/")
    p.add_argument("--split-file", default=None, help="evaluate only one part of a split JSON")
    p.add_argument("--split", default="test", help="which part of --split-file (default test)")
    p.add_argument("--output", default=None, help="JSON report path (default: print a summary only)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95 %% CIs (0: none)")
    p.add_argument("--no-progress", action="store_true")
    return p


def score_records(
    predictor: Predictor,
    records: Sequence[ImageRecord],
    batch_size: int = 64,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    show_progress: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Calibrated P(PNEUMONIA) for each readable record.

    Args:
        progress: called with ``(done, total)`` after each batch (the dashboard's bar).

    Returns:
        ``(predictions, errors)``: one ``{"path", "label", "p_pneumonia"}`` per
        readable image, and one line per unreadable one.
    """
    meta = predictor.meta
    dataset = _TolerantDataset(records, eval_transform(meta.image_size, meta.mean, meta.std), meta.image_size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    predictions, errors, done = [], [], 0
    with torch.inference_mode():
        for images, labels, indices, failures in tqdm(loader, desc="evaluate", unit="batch",
                                                       disable=not show_progress):
            probabilities = predictor.proba_from_logits(predictor.model(images.to(predictor.device)).float().cpu())
            for p, label, index, failure in zip(probabilities[:, 1], labels, indices, failures, strict=True):
                if failure:
                    errors.append(failure)
                    continue
                record = records[int(index)]
                predictions.append({"path": record.path, "label": int(label), "p_pneumonia": float(p),
                                    "patient_id": record.patient_id})
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
    if bootstrap and len(set(labels.tolist())) == 2:
        report["confidence_intervals"] = bootstrap_intervals(labels, scores, predictor.threshold, bootstrap)
    report.update(
        {
            "n_patients": len({p["patient_id"] for p in predictions}),
            "data_dir": str(data_dir),
            "checkpoint": {"path": predictor.checkpoint_path, "sha256": predictor.checkpoint_sha256,
                           "arch": predictor.meta.arch, "temperature": predictor.meta.temperature,
                           "threshold_goal": predictor.meta.threshold_goal},
            "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "predictions": predictions,
        }
    )
    return report


def main(args: argparse.Namespace) -> int:
    """Evaluate; returns the exit status."""
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, args.device)
        if args.split_file:
            parts = load_split(args.split_file, args.data_dir)
            if args.split not in parts:
                raise ValueError(f"{args.split_file} has no part {args.split!r}")
            records = parts[args.split]
        else:
            records = scan_image_folder(args.data_dir)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    predictions, errors = score_records(predictor, records, args.batch_size, args.workers,
                                        show_progress=not args.no_progress)
    for line in errors:
        print(f"warning: skipped {line}", file=sys.stderr)
    if not predictions:
        print("error: no readable images to evaluate", file=sys.stderr)
        return 2
    report = build_report(predictor, predictions, args.data_dir, args.bootstrap)
    report["skipped"] = errors
    if args.split_file:
        report["split"] = {"file": args.split_file, "part": args.split}
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1))
    auc = report["roc_auc"]
    print(f"images={report['n_images']} patients={report['n_patients']} accuracy={report['accuracy']:.4f} "
          f"roc_auc={auc if auc is None else f'{auc:.4f}'} sensitivity={report['sensitivity']:.4f} "
          f"specificity={report['specificity']:.4f} ece={report['ece']:.4f} threshold={report['threshold']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
