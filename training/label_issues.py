"""Suspected label errors in the training data, queued for review in the dashboard.

    python -m training.label_issues --data-dir DIR [--checkpoint C] [--split-file S --split train]
        [--top 50] [--folds 5] [--output issues.csv] [--dry-run] [--database-url URL]

Method (confident learning; Northcutt, Jiang & Chuang, JAIR 2021, via the
``cleanlab`` package): every image is embedded with the checkpoint's network
(the input of its last linear layer); a logistic-regression head is fitted in
K folds grouped by patient, so each image's probabilities come from a head that
never saw it (out-of-fold). ``cleanlab.filter.find_label_issues`` then flags the
images whose given label falls outside the per-class confident threshold and
ranks them by self-confidence (the out-of-fold probability of the given label,
lowest first). The backbone itself has seen these labels, so the doubts are
conservative: obvious errors surface, subtle ones may not.

The top N are stored with their given label and a prediction of the model in
use (channel ``training_data``) and appear in the Review page's "Training data"
queue. A reviewer's correction becomes the image's resolved label and flows into
``python -m db export`` and ``training.train --relabel`` by file name.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.checkpoint import CheckpointError
from core.cli import report_error
from core.data import ImageRecord, load_split, sample_records, scan_image_folder
from core.images import ImageLoadError, load_image, printable
from core.inference import Predictor, default_checkpoint, forward_logits
from core.labels import CLASS_NAMES

METHOD = "confident learning (cleanlab), out-of-fold"


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m training.label_issues``."""
    p = argparse.ArgumentParser(prog="python -m training.label_issues", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="ImageFolder root with NORMAL/ and PNEUMONIA/")
    p.add_argument("--checkpoint", default=None, help="checkpoint whose network embeds the images (default: shipped)")
    p.add_argument("--split-file", default=None, help="look only at one part of a split JSON")
    p.add_argument("--split", default="train", help="which part of --split-file (default train)")
    p.add_argument("--max-images", type=int, default=None, help="a seeded sample of this many images")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds, grouped by patient")
    p.add_argument("--top", type=int, default=50, help="queue this many of the most doubted images")
    p.add_argument("--output", default=None, help="CSV of every flagged image, most doubted first")
    p.add_argument("--dry-run", action="store_true", help="rank and report; queue nothing")
    p.add_argument("--database-url", default=None, help="overrides $DATABASE_URL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p


@dataclass(frozen=True)
class SuspectedError:
    """One training image whose given label is doubted."""

    path: str
    given_label: str
    p_given_label: float
    rank: int


def embed(predictor: Predictor, records: Sequence[ImageRecord], progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """Features of each readable image: the input of the network's last linear layer.

    Returns:
        ``(features, kept)``: one row per readable image and the indices of those images in ``records``.
    """
    linear = [m for m in predictor.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    hook = linear.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0].detach().cpu()))
    kept: list[int] = []
    try:
        batch: list[torch.Tensor] = []
        for index, record in enumerate(tqdm(records, desc="embedding", unit="img", disable=not progress)):
            try:
                batch.append(predictor.input_tensor(load_image(record.path)))
            except ImageLoadError as error:
                print(f"skipped: {error}", file=sys.stderr)
                continue
            kept.append(index)
            if len(batch) == predictor.batch_size:
                forward_logits(predictor.model, torch.stack(batch), predictor.device)
                batch = []
        if batch:
            forward_logits(predictor.model, torch.stack(batch), predictor.device)
    finally:
        hook.remove()
    if not captured:
        return np.empty((0, linear.in_features), dtype=np.float32), kept
    return torch.cat(captured).float().numpy(), kept


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, groups: Sequence[str], folds: int, seed: int):
    """``(N, 2)`` probabilities, each row from a logistic-regression head fitted on the other patients' folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(head, features, labels, groups=list(groups), cv=splitter, method="predict_proba")


def rank_label_issues(paths: Sequence[str], labels: np.ndarray, probabilities: np.ndarray) -> list[SuspectedError]:
    """Confident learning: the flagged images, most doubted (lowest self-confidence) first."""
    from cleanlab.filter import find_label_issues

    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
    return [
        SuspectedError(paths[i], CLASS_NAMES[labels[i]], float(probabilities[i, labels[i]]), rank)
        for rank, i in enumerate(ranked, start=1)
    ]


def queue_for_review(predictor: Predictor, issues: Sequence[SuspectedError], database_url: str | None) -> int:
    """Store the images with their given labels and queue them in the dashboard's "Training data" queue.

    Images already queued are skipped. Returns the number newly queued.
    """
    from service.known_models import predictor_in_force
    from service.reader_study import queue_training_images
    from service.store import open_store

    engine = open_store(database_url)
    return queue_training_images(
        engine,
        predictor_in_force(engine, predictor),
        [(Path(i.path), i.given_label, i.p_given_label, i.rank) for i in issues],
        METHOD,
    )


def _write_csv(path: str, issues: Sequence[SuspectedError]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "file_name", "path", "given_label", "p_given_label"])
        for issue in issues:
            name = Path(issue.path).name
            writer.writerow([issue.rank, name, issue.path, issue.given_label, f"{issue.p_given_label:.6f}"])


def main(args: argparse.Namespace) -> int:
    """Rank suspected label errors and queue the top ones; returns the exit status."""
    from service.store import StoreUnavailable, ValidationError

    try:
        if args.split_file:
            records = load_split(args.split_file, args.data_dir)[args.split]
        else:
            records = scan_image_folder(args.data_dir)
        records = sample_records(records, args.max_images, args.seed)
        predictor = Predictor.from_checkpoint(args.checkpoint or default_checkpoint(), "auto", backend="torch")
        features, kept = embed(predictor, records, progress=not args.no_progress)
        records = [records[i] for i in kept]
        labels = np.array([r.label for r in records])
        patients = {r.patient_id for r in records}
        if min(np.bincount(labels, minlength=2)) < args.folds or len(patients) < args.folds:
            raise ValueError(f"need at least {args.folds} images of each class from {args.folds}+ patients")
        groups = [r.patient_id for r in records]
        probabilities = out_of_fold_probabilities(features, labels, groups, args.folds, args.seed)
        issues = rank_label_issues([r.path for r in records], labels, probabilities)
        print(f"{len(issues)} of {len(records)} images flagged as suspected label errors ({METHOD})")
        for issue in issues[: min(10, args.top)]:
            name = printable(Path(issue.path).name)
            print(f"  #{issue.rank} {name}: labelled {issue.given_label}, p={issue.p_given_label:.3f}")
        if args.output:
            _write_csv(args.output, issues)
            print(f"wrote {args.output}")
        if not args.dry_run and args.top > 0:
            queued = queue_for_review(predictor, issues[: args.top], args.database_url)
            print(f"queued {queued} image(s) in the dashboard's Training data queue")
    except (OSError, ValueError, KeyError, CheckpointError, StoreUnavailable, ValidationError) as error:
        report_error(error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
