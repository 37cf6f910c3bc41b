"""Calibrate a checkpoint and set its operating point, both on validation data.

    python -m training.calibrate --checkpoint runs/lite0/best_model.pth \
        --data-dir ../shared/data/chest_xray/train --split-file runs/lite0/split.json \
        --threshold-goal "sensitivity>=0.95"

    python -m training.calibrate --checkpoint models/best_model.pth --from-reviews \
        [--threshold-goal "sensitivity>=0.95"] [--min-cases 20]

Training calls :func:`calibrate_checkpoint` at its end; this command re-runs it,
e.g. for another threshold goal, without retraining. ``--from-reviews`` fits a
site calibration (temperature and bias) and threshold on the resolved reviewed
cases of the review database instead, and saves it there as the operating point
in force for that model version; the checkpoint file is not touched, so its
version (hash) stays the same.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm import tqdm

from core.calibration import fit_temperature
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.cli import report_error, report_warning
from core.data import XrayDataset, collate_readable, load_split
from core.domain import feature_layers
from core.inference import resolve_device, write_serving_files
from core.metrics import choose_threshold, classification_report
from core.onnx_runtime import onnx_path
from core.shifts import stress_names
from core.site_adaptation import DEFAULT_MIN_PER_CLASS
from core.transforms import eval_transform
from training.domain import domain_loader, features_and_logits, refit_domain
from training.loop import collect_logits


def calibrate_checkpoint(
    path: Path,
    val_loader: DataLoader,
    device: torch.device,
    goal: str,
    show: bool = False,
    note: str = "",
    domain_train: DataLoader | None = None,
    domain_val: DataLoader | None = None,
) -> dict[str, Any]:
    """Fit the temperature, choose the threshold for ``goal``, refit the out-of-domain statistics, and
    rewrite the checkpoint.

    Args:
        note: appended to the recorded goal (what the scores were fitted on, when not plain validation).
        domain_train: training images for the out-of-domain statistics (``training.domain``); without
            them the checkpoint keeps the statistics it has.
        domain_val: the plain validation images that cut them (default ``val_loader``; give it when
            ``val_loader`` holds shifted copies).

    Returns:
        The validation report at the chosen threshold, on calibrated scores.
    """
    model, meta = load_checkpoint(path)
    logits, labels = collect_logits(model.to(device), val_loader, device, "calibrate", show)
    before = classification_report(labels.numpy(), torch.softmax(logits, 1)[:, 1].numpy(), 0.5)
    meta.temperature = fit_temperature(logits, labels)
    p = torch.softmax(logits / meta.temperature, 1)[:, 1].numpy()
    meta.threshold = choose_threshold(labels.numpy(), p, goal) if len(set(labels.tolist())) == 2 else 0.5
    meta.threshold_goal = goal + note
    report = classification_report(labels.numpy(), p, meta.threshold)
    meta.val_metrics = {
        **meta.val_metrics,
        **{k: report[k] for k in ("accuracy", "roc_auc", "sensitivity", "specificity", "ece", "brier")},
        "ece_uncalibrated": before["ece"],
        "brier_uncalibrated": before["brier"],
    }
    if domain_train is not None:
        val_features, val_logits, _ = features_and_logits(
            model, feature_layers(meta.arch), domain_val or val_loader, device, show
        )
        try:
            refit_domain(model, meta, domain_train, val_features, val_logits, device, show)
        except ValueError as error:  # too few images (a smoke-test run): no detector rather than a poor one
            meta.domain, meta.domain_state = {}, {}
            tqdm.write(f"out-of-domain statistics not fitted: {error}")
    meta.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    save_checkpoint(path, model, meta)
    if meta.onnx_sha256 and onnx_path(path).is_file():  # same weights: the export stands, its manifest follows
        write_serving_files(path, model, meta)
    tqdm.write(
        f"calibrated: temperature={meta.temperature:.3f} threshold={meta.threshold:.4f} ({goal}) "
        f"val_acc={report['accuracy']:.4f} sens={report['sensitivity']:.4f} "
        f"spec={report['specificity']:.4f} ece {before['ece']:.4f} -> {report['ece']:.4f}"
    )
    return report


class _Shifted:
    """A picklable transform: one named perturbation, then the evaluation transform."""

    def __init__(self, name: str, transform: Any) -> None:
        self.name, self.transform = name, transform

    def __call__(self, image: Any) -> Any:
        from core.shifts import SHIFTS

        return self.transform(SHIFTS[self.name](image))


def validation_set(
    records: list[Any], image_size: int, mean: list[float], std: list[float], shifts: list[str], intensity: str = "none"
) -> Dataset:
    """The validation images, plus one perturbed copy of each per name in ``shifts``.

    Fitting the temperature and threshold on this pool trades a little clean
    specificity for an operating point whose sensitivity goal holds under those shifts.
    """
    transform = eval_transform(image_size, mean, std, intensity)
    parts = [XrayDataset(records, transform)] + [XrayDataset(records, _Shifted(n, transform)) for n in shifts]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


VALIDATION_GOAL = "sensitivity>=0.95"
SITE_GOAL = "sensitivity>=0.95@0.90"
"""A site point fitted on a few reviewed cases must meet its goal with confidence, not only on them."""


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the calibration command."""
    p = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__.split("\n")[0])
    p.add_argument(
        "--checkpoint",
        default=None,
        help="rewritten in place with --data-dir; with --from-reviews only identifies the model version "
        "(default: the shipped model)",
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split-file", default=None, help="the split.json of the training run")
    p.add_argument(
        "--threshold-goal",
        default=None,
        help="default: sensitivity>=0.95 on validation; with --from-reviews sensitivity>=0.95@0.90 (met with 90 %% "
        "confidence on the reviewed cases, not only on them)",
    )
    p.add_argument(
        "--stress-val",
        nargs="?",
        const="default",
        default=None,
        metavar="NAMES",
        help="fit temperature and threshold on validation pooled with its perturbed copies (core.shifts; the "
        "default stress set or a comma list), so the operating point holds under those shifts",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=1)
    reviews = p.add_argument_group("site calibration from reviewed cases ($DATABASE_URL)")
    reviews.add_argument(
        "--from-reviews",
        action="store_true",
        help="fit temperature, bias and threshold on this site's resolved reviewed cases and save "
        "them as the operating point in force (the checkpoint is not changed)",
    )
    reviews.add_argument(
        "--min-cases",
        type=int,
        default=DEFAULT_MIN_PER_CLASS,
        help="refuse with fewer resolved cases of either class (default %(default)s)",
    )
    reviews.add_argument(
        "--by", default=os.environ.get("USER") or "training.calibrate", help="who is recorded as making the change"
    )
    reviews.add_argument("--reason", default="site calibration from reviewed cases")
    reviews.add_argument("--dry-run", action="store_true", help="print the figures, save nothing")
    reviews.add_argument(
        "--override",
        action="store_true",
        help="save although the cross-validated estimate misses the goal or a lower bound is worse than the "
        "point in force (the override and its reasons are recorded)",
    )
    reviews.add_argument(
        "--restore",
        nargs="?",
        const="checkpoint",
        default=None,
        metavar="CHANGE_ID",
        help="put the checkpoint's own operating point (or the saved threshold change CHANGE_ID) back in force: "
        "a logged change; needs --reason",
    )
    reviews.add_argument("--bootstrap", type=int, default=1000)
    return p


def _line(name: str, figures: dict[str, Any]) -> str:
    parts = []
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "ece"):
        value, ci = figures.get(key), figures.get("confidence_intervals", {}).get(key)
        text = "n/a" if value is None else f"{value:.3f}"
        parts.append(f"{key}={text}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci and value is not None else ""))
    return f"{name}: " + " ".join(parts)


def calibrate_from_reviews(args: argparse.Namespace) -> int:
    """Fit and save a site operating point from the review database; returns the exit status."""
    from core.site_adaptation import NotEnoughCases
    from service.model_versions import load_predictor_in_force
    from service.site import propose, save_proposal
    from service.store import open_store

    engine = open_store()
    predictor = load_predictor_in_force(args.checkpoint, args.device, engine)
    if args.restore:
        from service.site import restore_point

        earlier = None if args.restore == "checkpoint" else int(args.restore)  # ValueError: one error line
        change = restore_point(engine, predictor, args.by, args.reason, earlier)
        which = "the checkpoint's operating point" if earlier is None else f"operating point #{earlier}"
        print(f"restored {which} for {predictor.version} as threshold change #{change}")
        return 0
    try:
        goal = args.threshold_goal or SITE_GOAL
        proposal, scores = propose(engine, predictor, goal, args.min_cases, args.bootstrap)
    except NotEnoughCases as error:
        report_error(error)
        return 2
    for line in scores.skipped:
        report_warning(f"skipped {line}")
    print(f"used: {scores.sample_note}")
    point = proposal.point
    print(
        f"model {predictor.version}: {len(scores.cases)} resolved reviewed cases "
        f"({int((scores.labels == 0).sum())} NORMAL, {int((scores.labels == 1).sum())} PNEUMONIA)"
    )
    print(_line(f"before ({predictor.point.describe()})", proposal.before))
    print(_line(f"after, {proposal.after['estimate']}", proposal.after))
    print(f"proposed: {point.describe()} for {point.goal}")
    for problem in proposal.problems():
        report_warning(problem)
    if args.dry_run:
        print("dry run: nothing saved")
        return 0
    change = save_proposal(engine, predictor, proposal, scores, args.by, args.reason, override=args.override)
    print(f"saved as threshold change #{change}; every entry point now uses it for {predictor.version}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Calibrate; returns the exit status."""
    try:
        if args.from_reviews or args.restore:
            return calibrate_from_reviews(args)
        if not args.checkpoint or not args.data_dir or not args.split_file:
            raise ValueError("give --checkpoint, --data-dir and --split-file, or --from-reviews")
        _, meta = load_checkpoint(args.checkpoint)
        parts = load_split(args.split_file, args.data_dir)
        records = parts["val"]
        dataset = validation_set(
            records, meta.image_size, meta.mean, meta.std, stress_names(args.stress_val), meta.intensity
        )
        loader = DataLoader(dataset, batch_size=64, num_workers=args.workers, collate_fn=collate_readable)
        note = f" (validation + shifts: {','.join(stress_names(args.stress_val))})" if args.stress_val else ""
        calibrate_checkpoint(
            Path(args.checkpoint),
            loader,
            resolve_device(args.device),
            args.threshold_goal or VALIDATION_GOAL,
            True,
            note,
            domain_train=domain_loader(parts["train"], meta.eval_transform()) if parts.get("train") else None,
            domain_val=domain_loader(records, meta.eval_transform(), limit=10**9) if args.stress_val else None,
        )
    except (CheckpointError, FileNotFoundError, KeyError, ValueError, RuntimeError) as error:
        # RuntimeError: service.StoreUnavailable
        report_error(error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
