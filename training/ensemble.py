"""Combine trained checkpoints into one ensemble checkpoint, calibrated and thresholded as one model.

    python -m training.ensemble --members runs/seeds/robust/seed0/best_model.pth ... \
        --data-dir ../shared/data/chest_xray/train --split-file models/split.json \
        [--threshold-goal youden] --output runs/ensemble/best_model.pth

The members (same architecture, input size and normalisation) become one
``core.networks.LogitEnsemble`` (mean of logits), saved as an ordinary checkpoint
whose architecture is ``ensemble<k>:<member>``: the dashboard, the command
lines, evaluation, ONNX export and Grad-CAM use it like any single model. Its
temperature and threshold are fitted on the validation part of the split, as
training does; the members' own calibrations are not used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch.utils.data import DataLoader

from core.checkpoint import CheckpointError, CheckpointMeta, file_sha256, load_checkpoint, save_checkpoint
from core.cli import report_error
from core.data import XrayDataset, collate_readable, load_split
from core.inference import resolve_device
from core.networks import LogitEnsemble, ensemble_name
from training.calibrate import calibrate_checkpoint
from training.domain import domain_loader


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m training.ensemble``."""
    p = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__.split("\n\n")[0])
    p.add_argument("--members", nargs="+", required=True, help="two or more checkpoints of one architecture")
    p.add_argument("--data-dir", required=True, help="ImageFolder root the split refers to")
    p.add_argument("--split-file", required=True, help="split JSON whose 'val' part calibrates the ensemble")
    p.add_argument("--threshold-goal", default="sensitivity>=0.95", help="'sensitivity>=X' or 'youden'")
    p.add_argument("--output", required=True, help="the ensemble checkpoint to write")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True, help="export the ONNX copy")
    p.add_argument("--no-progress", action="store_true")
    return p


def build_ensemble(members: list[str | Path]) -> tuple[LogitEnsemble, CheckpointMeta]:
    """Load the members and wrap them; the metadata describes the whole (calibration still to fit).

    Raises:
        CheckpointError: fewer than two members, an unreadable one, or members that differ
            in architecture, input size, normalisation or classes.
    """
    if len(members) < 2:
        raise CheckpointError("an ensemble needs at least two members")
    loaded = [load_checkpoint(path) for path in members]
    first = loaded[0][1]
    for path, (_, meta) in zip(members, loaded, strict=True):
        same = (meta.arch, meta.image_size, meta.mean, meta.std, meta.intensity, meta.class_names)
        if same != (first.arch, first.image_size, first.mean, first.std, first.intensity, first.class_names):
            raise CheckpointError(f"{path}: differs from {members[0]} in architecture, input or classes")
    meta = CheckpointMeta(
        arch=ensemble_name(first.arch, len(members)),
        image_size=first.image_size,
        mean=list(first.mean),
        std=list(first.std),
        intensity=first.intensity,
        class_names=list(first.class_names),
        train_args={
            "ensemble_of": [
                {"path": str(path), "sha256": file_sha256(path), "train_args": meta.train_args}
                for path, (_, meta) in zip(members, loaded, strict=True)
            ]
        },
        split=dict(first.split),
    )
    return LogitEnsemble([model for model, _ in loaded]), meta


def main(args: argparse.Namespace) -> int:
    """Build, calibrate and save the ensemble; returns the exit status."""
    try:
        model, meta = build_ensemble(args.members)
        parts = load_split(args.split_file, args.data_dir)
        if not parts.get("val"):
            raise ValueError(f"{args.split_file} has no validation part to calibrate on")
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(output, model, meta)
        device = resolve_device(args.device)
        val = XrayDataset(parts["val"], meta.eval_transform())
        loader = DataLoader(val, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_readable)
        calibrate_checkpoint(
            output,
            loader,
            device,
            args.threshold_goal,
            show=not args.no_progress,
            domain_train=domain_loader(parts["train"], meta.eval_transform()) if parts.get("train") else None,
        )
        if args.onnx:
            from core.onnx_export import export_onnx

            print(f"exported {export_onnx(output)}")
        print(f"wrote {output} ({meta.arch})")
    except (CheckpointError, OSError, ValueError, KeyError) as error:
        report_error(error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
