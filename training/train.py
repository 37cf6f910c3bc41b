"""Train a pneumonia classifier.

    python -m training.train --data-dir ../shared/data/chest_xray/train --model efficientnet_lite0 \
        --pretrained imagenet --epochs 8 --output-dir runs/lite0

Fine-tune a shipped model with this site's reviewed cases (a few CPU minutes)::

    python -m training.train --init-checkpoint models/best_model.pth --data-dir DIR --reviewed \
        --epochs 1 --max-train-images 1500 --lr 3e-4 --output-dir runs/site_v2

Faster on the CPU (about 1.6x, README "Speed"): add ``--compile --low-res-size 160 --low-res-epochs 3``.

Runs the same under ``torchrun --nproc_per_node N -m training.train ...`` with
DistributedDataParallel. The best epoch (by a validation metric) is written as a
self-describing checkpoint, then calibrated (temperature scaling) and given a
decision threshold chosen on validation for ``--threshold-goal``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler, WeightedRandomSampler
from tqdm import tqdm

from core.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    file_sha256,
    load_checkpoint,
    model_version,
    save_checkpoint,
)
from core.cli import report_error
from core.data import (
    XrayDataset,
    apply_label_overrides,
    collate_readable,
    grouped_split,
    load_split,
    materialize_hf_dataset,
    read_label_overrides,
    save_split,
    scan_image_folder,
    split_summary,
)
from core.inference import resolve_device
from core.metrics import classification_report, confusion_rates
from core.networks import WeightsUnavailableError, available_models, freeze_stages, get_model, get_spec
from core.onnx_export import export_onnx
from core.transforms import INTENSITY_MODES, eval_transform, train_transform
from service.store import StoreUnavailable
from training import distributed
from training.calibrate import calibrate_checkpoint
from training.domain import domain_loader
from training.loop import collect_logits, train_one_epoch
from training.reviewed import load_reviewed, merge_training_records

STATE_FORMAT = "pneumonia-train-state"
RUN_LOCAL_ARGS = ("epochs", "max_minutes", "resume", "output_dir", "device", "workers", "no_progress", "compile")
"""Arguments a resumed run may change; the rest are restored from the saved state."""


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the training command."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="ImageFolder root with NORMAL/ and PNEUMONIA/")
    src.add_argument("--hf-dataset", help="Hugging Face data set id or local data-set folder")
    p.add_argument("--hf-cache-dir", default="data/hf_images", help="where HF images are written")
    p.add_argument("--split-file", default=None, help="reuse a split JSON (default: make one, seeded)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--relabel", default=None, help="relabel CSV from 'python -m db export'")
    p.add_argument("--model", default="efficientnet_lite0", choices=available_models())
    p.add_argument("--pretrained", default=None, help="'imagenet' or a weights file; none = scratch")
    p.add_argument("--freeze-stages", type=int, default=0, help="freeze this many early backbone stages")
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels-last memory layout (much faster convolutions on CPU)",
    )
    p.add_argument("--image-size", type=int, default=None, help="input side (default: the model's)")
    p.add_argument(
        "--low-res-size",
        type=int,
        default=None,
        help="progressive resizing: train the first --low-res-epochs epochs at this side (e.g. 160: about half "
        "the compute per image at 224); validation, selection and the checkpoint stay at the full side",
    )
    p.add_argument("--low-res-epochs", type=int, default=0, help="how many first epochs train at --low-res-size")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--hflip", action="store_true", help="random horizontal flips (mirror anatomy)")
    p.add_argument("--rotation", type=float, default=10.0)
    p.add_argument("--color-jitter", type=float, default=0.2)
    p.add_argument(
        "--balance",
        choices=["weights", "sampler", "none"],
        default="weights",
        help="class weights 1/count in the loss, a balanced sampler, or nothing",
    )
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument(
        "--augment",
        choices=["standard", "robust"],
        default="standard",
        help="robust: also random framing, exposure, blur, noise and JPEG shifts (core.shifts.RandomSiteShift)",
    )
    p.add_argument(
        "--intensity",
        choices=list(INTENSITY_MODES),
        default="none",
        help="per-image intensity normalisation, stored in the checkpoint and applied the same at inference",
    )
    p.add_argument("--mixup", type=float, default=0.0, help="mixup with Beta(a, a) mixing weights; 0 = off")
    p.add_argument("--min-scale", type=float, default=0.85, help="smallest random-crop area (fraction of the image)")
    p.add_argument("--ema", type=float, default=0.0, help="exponential moving average of the weights, e.g. 0.999")
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling); no effect on the CPU",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training forward and backward: about 1.2x faster steps on these CPUs after a "
        "one-off compile of about a minute (needs a C++ compiler); pays for runs longer than a few minutes",
    )
    p.add_argument("--select-metric", choices=["roc_auc", "balanced_accuracy", "val_loss"], default="roc_auc")
    p.add_argument("--patience", type=int, default=4, help="early stop after this many epochs without gain")
    p.add_argument("--lr-patience", type=int, default=1, help="ReduceLROnPlateau patience")
    p.add_argument(
        "--threshold-goal",
        default="sensitivity>=0.95",
        help="operating point chosen on validation: 'sensitivity>=X' (best specificity there) or 'youden'",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--output-dir", default="runs/latest")
    p.add_argument("--resume", default=None, help="a last.pth from an earlier run of the same settings")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--onnx",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="export best_model.onnx for ONNX Runtime serving at the end (default on)",
    )
    tune = p.add_argument_group("fine-tuning with reviewed cases")
    tune.add_argument(
        "--init-checkpoint",
        default=None,
        help="start from this checkpoint's weights and settings (a short fine-tune); its split.json is reused",
    )
    tune.add_argument(
        "--reviewed",
        action="store_true",
        help="add the review database's resolved reviewed images ($DATABASE_URL), joined by content hash; "
        "a fixed fifth (by hash) is kept out for comparing versions",
    )
    tune.add_argument("--reviewed-repeat", type=int, default=5, help="each reviewed image counts this many times")
    tune.add_argument("--max-train-images", type=int, default=None, help="sample this many original images")
    tune.add_argument("--database-url", default=None, help="overrides $DATABASE_URL for --reviewed")
    return p


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_train_state(path: str) -> dict[str, Any]:
    """Load a ``last.pth`` training state safely, or raise ``ValueError``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many types for a bad file
        raise ValueError(f"{path} is not a loadable training state ({type(error).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a training state file (last.pth)")
    return state


def _records(args: argparse.Namespace, rank: int):
    if args.data_dir:
        return scan_image_folder(args.data_dir), Path(args.data_dir)
    cache = Path(args.hf_cache_dir)
    if rank == 0 and not cache.exists():
        materialize_hf_dataset(args.hf_dataset, cache)
    distributed.barrier()
    return scan_image_folder(cache), cache


def _split(args: argparse.Namespace, records, root: Path, out: Path, rank: int):
    if args.split_file:
        return load_split(args.split_file, root)
    parts = grouped_split(records, args.val_fraction, args.test_fraction, args.seed)
    if rank == 0:
        save_split(parts, out / "split.json", root)
    return parts


def check_low_res(low_res_size: int | None, low_res_epochs: int, size: int) -> None:
    """Refuse progressive-resizing settings that cannot work, in one line (``ValueError``)."""
    if low_res_epochs < 0:
        raise ValueError(f"--low-res-epochs must be >= 0, got {low_res_epochs}")
    if low_res_size is None:
        if low_res_epochs:
            raise ValueError("--low-res-epochs needs --low-res-size")
        return
    if not 16 <= low_res_size < size:
        raise ValueError(f"--low-res-size must lie in [16, {size}) (the full side is {size}), got {low_res_size}")


def _train_dataset(args: argparse.Namespace, records, size: int, intensity: str) -> XrayDataset:
    spec = get_spec(args.model)
    transform = train_transform(
        size,
        spec.mean,
        spec.std,
        args.hflip,
        args.rotation,
        scale=(args.min_scale, 1.0),
        color_jitter=args.color_jitter,
        site_shifts=args.augment == "robust",
        intensity=intensity,
    )
    return XrayDataset(records, transform)


def _train_loader(args, dataset: XrayDataset, world_size: int, persistent: bool = True) -> DataLoader:
    generator = torch.Generator().manual_seed(args.seed)
    sampler: Sampler[int] | None = None
    if world_size > 1:
        sampler = DistributedSampler(dataset, shuffle=True, seed=args.seed)
    elif args.balance == "sampler":
        counts = np.bincount(dataset.labels, minlength=2)
        weights = [1.0 / counts[y] for y in dataset.labels]
        sampler = WeightedRandomSampler(weights, len(weights), generator=generator)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        generator=generator,
        drop_last=len(dataset) > args.batch_size,
        persistent_workers=persistent and args.workers > 0,
        collate_fn=collate_readable,
        pin_memory=torch.cuda.is_available() and args.device != "cpu",  # faster host-to-GPU copies
    )


def _weight_average(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights and batch-norm statistics (``None`` when ``decay`` is 0).

    Averaged weights sit in a flatter minimum than the last step's, which tends to
    hold up better under shift; validation, selection and the checkpoint use them.
    """
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"--ema must lie in (0, 1), got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _criterion(args, labels: list[int], device: torch.device) -> nn.Module:
    weight = None
    if args.balance == "weights":
        counts = np.bincount(labels, minlength=2).astype(np.float64)
        w = 1.0 / np.maximum(counts, 1)
        weight = torch.tensor(w / w.sum() * len(w), dtype=torch.float32, device=device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=args.label_smoothing)


def _validation_scores(
    model: nn.Module, loader: DataLoader, device: torch.device, show: bool
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    logits, labels = collect_logits(model, loader, device, "validate", show)
    p = torch.softmax(logits, 1)[:, 1].numpy()
    report = classification_report(labels.numpy(), p, 0.5)
    loss = float(nn.functional.cross_entropy(logits, labels)) if len(labels) else float("nan")
    scores = {
        "val_loss": loss,
        "roc_auc": report["roc_auc"] if report["roc_auc"] is not None else float("nan"),
        "balanced_accuracy": confusion_rates(labels.numpy(), p, 0.5)["balanced_accuracy"],
        "val_accuracy": report["accuracy"],
    }
    return scores, logits, labels


def _score_for_selection(metric: str, scores: dict[str, float]) -> float:
    return -scores["val_loss"] if metric == "val_loss" else scores[metric]


def _initial_checkpoint(args: argparse.Namespace) -> tuple[nn.Module, CheckpointMeta] | None:
    """Load ``--init-checkpoint`` and take its architecture, freezing and split; records where it came from."""
    if not args.init_checkpoint:
        return None
    model, meta = load_checkpoint(args.init_checkpoint)
    args.model = meta.arch
    args.freeze_stages = max(args.freeze_stages, int(meta.train_args.get("freeze_stages", 0) or 0))
    beside = Path(args.init_checkpoint).with_name("split.json")
    if args.split_file is None and beside.exists():
        args.split_file = str(beside)  # same validation and test patients as the model it starts from
    sha256 = file_sha256(args.init_checkpoint)
    args.init_provenance = {
        "path": str(args.init_checkpoint),
        "sha256": sha256,
        "version": model_version(meta.arch, sha256),
    }
    return model, meta


def train(args: argparse.Namespace) -> int:
    """Train; returns the exit status (expected failures raise, see :func:`main`)."""
    state = None
    if args.resume:
        state = load_train_state(args.resume)
        # Continue the same run: settings that shape the model and data come from the state.
        keep = {k: getattr(args, k) for k in RUN_LOCAL_ARGS}
        vars(args).update({**state["args"], **keep})
    if args.mixup < 0:
        raise ValueError(f"--mixup must be >= 0, got {args.mixup}")
    device = resolve_device(args.device)
    rank, world_size = distributed.init_distributed(device)
    if world_size > 1 and args.balance == "sampler":
        report_error("--balance sampler is not supported with torchrun; use weights")
        return 2
    show = rank == 0 and not args.no_progress
    seed_everything(args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    initial = _initial_checkpoint(args)
    records, root = _records(args, rank)
    parts = _split(args, records, root, out, rank)
    if args.relabel:
        overrides = read_label_overrides(args.relabel)
        parts = {k: apply_label_overrides(v, overrides) for k, v in parts.items()}
    reviewed = None
    if args.reviewed:
        reviewed = load_reviewed(args.database_url, parts["val"] + parts.get("test", []))
        parts["train"] = merge_training_records(
            parts["train"], reviewed, args.reviewed_repeat, args.max_train_images, args.seed
        )
        args.reviewed_provenance = reviewed.provenance()
        if show:
            tqdm.write(
                f"reviewed cases: {len(reviewed.train)} for training (x{args.reviewed_repeat}), "
                f"{len(reviewed.comparison_sha256)} kept for comparison, {reviewed.left_out} left out"
            )
    elif args.max_train_images is not None and len(parts["train"]) > args.max_train_images:
        parts["train"] = random.Random(args.seed).sample(parts["train"], args.max_train_images)
    spec = get_spec(args.model)
    size = initial[1].image_size if initial else (args.image_size or spec.image_size)
    intensity = initial[1].intensity if initial else args.intensity  # a fine-tune keeps its model's input
    check_low_res(args.low_res_size, args.low_res_epochs, size)
    train_ds = _train_dataset(args, parts["train"], size, intensity)
    val_ds = XrayDataset(parts["val"], eval_transform(size, spec.mean, spec.std, intensity))
    train_loader = _train_loader(args, train_ds, world_size)
    low_res_loader = None
    if args.low_res_size and args.low_res_epochs:
        low_res_ds = _train_dataset(args, parts["train"], args.low_res_size, intensity)
        low_res_loader = _train_loader(args, low_res_ds, world_size, persistent=False)
    val_loader = DataLoader(
        val_ds, batch_size=args.batch_size * 2, num_workers=args.workers, collate_fn=collate_readable
    )

    model = initial[0] if initial else get_model(args.model, pretrained=args.pretrained)
    freeze_stages(model, args.model, args.freeze_stages)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(device).to(memory_format=layout)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.3, patience=args.lr_patience)
    criterion = _criterion(args, train_ds.labels, device)
    start_epoch, best_score, bad_epochs, history = 1, -float("inf"), 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_score = state["epoch"] + 1, state["best_score"]
        bad_epochs, history = state["bad_epochs"], state["history"]
    if world_size > 1:
        model = DistributedDataParallel(model)
    plain_model = getattr(model, "module", model)
    averaged = _weight_average(plain_model, args.ema)
    # The compiled wrapper shares the model's parameters; validation and checkpoints use the plain module.
    # Static shapes: a progressive run compiles once per side instead of falling back to slower dynamic kernels.
    train_model = cast(nn.Module, torch.compile(model, dynamic=False)) if args.compile else model

    split_info = {
        "summary": split_summary(parts),
        "seed": args.seed,
        "scored_on": "val",
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "grouped_by": "patient id from file name, exact duplicates merged",
    }
    meta_base = dict(
        arch=args.model,
        image_size=size,
        mean=list(spec.mean),
        std=list(spec.std),
        intensity=intensity,
        train_args=vars(args).copy(),
        split=split_info,
    )
    started = time.monotonic()
    epochs = tqdm(range(start_epoch, args.epochs + 1), desc="epochs", disable=not show, unit="epoch")
    for epoch in epochs:
        loader = low_res_loader if low_res_loader is not None and epoch <= args.low_res_epochs else train_loader
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        epoch_started = time.monotonic()
        train_stats = train_one_epoch(
            train_model,
            loader,
            criterion,
            optimizer,
            device,
            epoch,
            show,
            layout,
            averaged=averaged,
            amp=args.amp,
            mixup=args.mixup,
        )
        train_stats["train_seconds"] = round(time.monotonic() - epoch_started, 1)  # the loop alone, for speed figures
        stop = False
        if rank == 0:
            scored = averaged.module if averaged is not None else plain_model  # the averaged weights are the model
            scores, _, _ = _validation_scores(scored, val_loader, device, show)
            score = _score_for_selection(args.select_metric, scores)
            if score != score:  # NaN, e.g. ROC-AUC on a one-class validation set
                score = -float("inf")
            improved = score > best_score or not (out / "best_model.pth").exists()
            if improved:
                best_score, bad_epochs = score, 0
                save_checkpoint(
                    out / "best_model.pth", scored, CheckpointMeta(**meta_base, val_metrics=scores, epoch=epoch)
                )
            else:
                bad_epochs += 1
            row = {
                "epoch": epoch,
                **train_stats,
                **scores,
                "lr": optimizer.param_groups[0]["lr"],
                "best": improved,
                "seconds": round(time.monotonic() - started, 1),
            }
            history.append(row)
            with open(out / "train_log.jsonl", "a") as log:
                log.write(json.dumps(row) + "\n")
            epochs.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            torch.save(
                {
                    "format": STATE_FORMAT,
                    "args": vars(args),
                    "model": plain_model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "best_score": best_score,
                    "bad_epochs": bad_epochs,
                    "history": history,
                },
                out / "last.pth",
            )
            over_time = args.max_minutes is not None and time.monotonic() - started > args.max_minutes * 60
            stop = bad_epochs >= args.patience or over_time
            scheduler.step(score)
        stop, lr = distributed.broadcast((stop, optimizer.param_groups[0]["lr"]))
        for group in optimizer.param_groups:
            group["lr"] = lr
        if stop:
            break

    if rank == 0:
        domain_train = domain_loader(parts["train"], eval_transform(size, spec.mean, spec.std, intensity))
        calibrate_checkpoint(
            out / "best_model.pth", val_loader, device, args.threshold_goal, show, domain_train=domain_train
        )
        if args.onnx:  # the serving copy, its hash recorded in the checkpoint (core.onnx_export)
            tqdm.write(f"exported {export_onnx(out / 'best_model.pth')}")
    distributed.barrier()
    distributed.cleanup()
    return 0


def main(args: argparse.Namespace) -> int:
    """Train, turning expected failures into one-line errors; returns the exit status."""
    try:
        return train(args)
    except (FileNotFoundError, ValueError, WeightsUnavailableError, CheckpointError, StoreUnavailable) as error:
        report_error(error)
        return 2


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
