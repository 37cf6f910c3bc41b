"""Calibrate a checkpoint and set its operating point, both on validation data.

    python -m training.calibrate --checkpoint runs/lite0/best_model.pth \
        --data-dir ../shared/data/chest_xray/train --split-file runs/lite0/split.json \
        --threshold-goal "sensitivity>=0.95"

Training calls :func:`calibrate_checkpoint` at its end; this command re-runs it,
e.g. for another threshold goal, without retraining.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.calibration import fit_temperature
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.data import XrayDataset, load_split
from core.inference import resolve_device
from core.metrics import choose_threshold, classification_report
from core.transforms import eval_transform
from training.engine import collect_logits


def calibrate_checkpoint(
    path: Path, val_loader: DataLoader, device: torch.device, goal: str, show: bool = False
) -> dict[str, Any]:
    """Fit the temperature, choose the threshold for ``goal``, and rewrite the checkpoint.

    Returns:
        The validation report at the chosen threshold, on calibrated scores.
    """
    model, meta = load_checkpoint(path)
    logits, labels = collect_logits(model.to(device), val_loader, device, "calibrate", show)
    before = classification_report(labels.numpy(), torch.softmax(logits, 1)[:, 1].numpy(), 0.5)
    meta.temperature = fit_temperature(logits, labels)
    p = torch.softmax(logits / meta.temperature, 1)[:, 1].numpy()
    meta.threshold = choose_threshold(labels.numpy(), p, goal) if len(set(labels.tolist())) == 2 else 0.5
    meta.threshold_goal = goal
    report = classification_report(labels.numpy(), p, meta.threshold)
    meta.val_metrics = {
        **meta.val_metrics,
        **{k: report[k] for k in ("accuracy", "roc_auc", "sensitivity", "specificity", "ece", "brier")},
        "ece_uncalibrated": before["ece"],
        "brier_uncalibrated": before["brier"],
    }
    meta.created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save_checkpoint(path, model, meta)
    tqdm.write(f"calibrated: temperature={meta.temperature:.3f} threshold={meta.threshold:.4f} ({goal}) "
               f"val_acc={report['accuracy']:.4f} sens={report['sensitivity']:.4f} "
               f"spec={report['specificity']:.4f} ece {before['ece']:.4f} -> {report['ece']:.4f}")
    return report


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the calibration command."""
    p = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="rewritten in place")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--split-file", required=True, help="the split.json of the training run")
    p.add_argument("--threshold-goal", default="sensitivity>=0.95")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=1)
    return p


def main(args: argparse.Namespace) -> int:
    """Calibrate; returns the exit status."""
    try:
        _, meta = load_checkpoint(args.checkpoint)
        records = load_split(args.split_file, args.data_dir)["val"]
        dataset = XrayDataset(records, eval_transform(meta.image_size, meta.mean, meta.std))
        loader = DataLoader(dataset, batch_size=64, num_workers=args.workers)
        calibrate_checkpoint(Path(args.checkpoint), loader, resolve_device(args.device), args.threshold_goal, True)
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
