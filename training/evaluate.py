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
from pathlib import Path

from core.checkpoint import CheckpointError
from core.data import load_split, scan_image_folder
from core.evaluation import build_report, score_records
from core.inference import Predictor


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
    p.add_argument("--tta", action="store_true", help="test-time augmentation (average of 4 views)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(args: argparse.Namespace) -> int:
    """Evaluate; returns the exit status."""
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, args.device)
        predictor.tta = args.tta
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
                                        show_progress=not args.no_progress, root=args.data_dir)
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
