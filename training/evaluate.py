"""Evaluate a checkpoint on a labelled folder and write a JSON report.

    python -m training.evaluate --checkpoint models/best_model.pth \
        --data-dir DIR --output report.json

    python -m training.evaluate --from-reviews   # this site's reviewed cases

The operating point is the one in force: saved in the review database
($DATABASE_URL, or the dashboard's default file) when there is one, else the
checkpoint's; the report's ``operating_point`` says which.
The report holds scikit-learn metrics at that threshold, bootstrap
95 % intervals, the ROC curve and one ``{"path", "label", "p_pneumonia"}`` entry
per image, so any figure can be recomputed without the images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.checkpoint import CheckpointError
from core.cli import add_backend_argument, report_error, report_warning
from core.data import load_split, sample_records, scan_image_folder
from core.evaluation import build_report, score_records, stress_report
from core.inference import Predictor
from core.serialization import strict_json
from core.shifts import stress_names


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the evaluation command."""
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description="Evaluate a checkpoint.")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--data-dir", default=None, help="ImageFolder root with NORMAL/ and PNEUMONIA/")
    p.add_argument("--split-file", default=None, help="evaluate only one part of a split JSON")
    p.add_argument("--split", default="test", help="which part of --split-file (default test)")
    p.add_argument("--output", default=None, help="JSON report path (default: print a summary only)")
    p.add_argument("--max-images", type=int, default=None, help="a seeded sample of this many images (same every run)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95 %% CIs (0: none)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation (average of 4 views)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--from-reviews",
        action="store_true",
        help="evaluate on this site's resolved reviewed cases ($DATABASE_URL) instead of a folder",
    )
    add_backend_argument(p)
    p.add_argument(
        "--stress",
        nargs="?",
        const="default",
        default=None,
        metavar="NAMES",
        help="also score under site-like perturbations (core.shifts): the default set, or a comma list",
    )
    p.add_argument(
        "--checkpoint-operating-point",
        action="store_true",
        help="ignore an operating point saved in the review database",
    )
    return p


def load_predictor_in_force(args: argparse.Namespace) -> Predictor:
    """The checkpoint (named, else promoted, else default) at the operating point in force."""
    from service.model_versions import load_predictor_in_force as load

    predictor = load(
        args.checkpoint, args.device, use_saved_point=not args.checkpoint_operating_point, backend=args.backend
    )
    predictor.tta = args.tta
    return predictor


def _from_reviews(args: argparse.Namespace, predictor: Predictor) -> int:
    from service.site import site_performance
    from service.store import open_store

    figures = site_performance(open_store(), predictor, args.bootstrap)
    for line in figures.pop("skipped"):
        report_warning(f"skipped {line}")
    text = json.dumps(figures, indent=1)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    print(text)
    return 0


def main(args: argparse.Namespace) -> int:
    """Evaluate; returns the exit status."""
    try:
        stress = stress_names(args.stress)
        predictor = load_predictor_in_force(args)
        if args.from_reviews:
            return _from_reviews(args, predictor)
        if not args.data_dir:
            raise ValueError("give --data-dir (a labelled folder) or --from-reviews")
        if args.split_file:
            parts = load_split(args.split_file, args.data_dir)
            if args.split not in parts:
                raise ValueError(f"{args.split_file} has no part {args.split!r}")
            records = parts[args.split]
        else:
            records = scan_image_folder(args.data_dir)
        records = sample_records(records, args.max_images)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as error:
        # RuntimeError: service.StoreUnavailable
        report_error(error)
        return 2
    predictions, errors = score_records(
        predictor, records, args.batch_size, args.workers, show_progress=not args.no_progress, root=args.data_dir
    )
    for line in errors:
        report_warning(f"skipped {line}")
    if not predictions:
        report_error("no readable images to evaluate")
        return 2
    report = build_report(predictor, predictions, args.data_dir, args.bootstrap)
    if stress:
        report["stress"] = stress_report(
            predictor, records, report, stress, args.batch_size, args.workers, show_progress=not args.no_progress
        )
    report = strict_json(report)
    report["skipped"] = errors
    if args.split_file:
        report["split"] = {"file": args.split_file, "part": args.split}
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1, allow_nan=False))
    auc = report["roc_auc"]
    print(
        f"images={report['n_images']} patients={report['n_patients']} accuracy={report['accuracy']:.4f} "
        f"roc_auc={auc if auc is None else f'{auc:.4f}'} sensitivity={report['sensitivity']:.4f} "
        f"specificity={_fmt(report['specificity'])} ece={_fmt(report['ece'])} threshold={report['threshold']:.4f} "
        f"operating_point={predictor.point.origin} temperature={predictor.point.temperature:.4f} "
        f"bias={predictor.point.bias:+.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
