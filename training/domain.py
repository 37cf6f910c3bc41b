"""Fit a checkpoint's out-of-domain statistics (``core.domain``) on its training and validation images.

    python -m training.domain models/best_model.pth \
        --data-dir ../shared/data/chest_xray/train --split-file models/split.json

Training, calibration and ensembling refit them through :func:`refit_domain`
(``training.calibrate.calibrate_checkpoint``), so every model version carries its own; this
command does it for an existing checkpoint, then re-exports its ONNX file (whose extra
``features`` output the score reads) and, when it had one, its int8 model.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, save_checkpoint
from core.cli import report_error
from core.data import ImageRecord, XrayDataset, collate_readable, load_split
from core.domain import DomainDetector, FeatureTap, feature_layers, fit_domain, network_sha256
from core.inference import resolve_device
from training.loop import collect_logits

TRAIN_IMAGES = 1500
"""Training images the Gaussians are fitted on (a seeded sample: 1,500 estimate 320 dimensions well)."""
REFERENCE_MARGINS = 2000
"""At most this many validation logit margins are kept for the monitor's reference stream."""


def domain_loader(
    records: list[ImageRecord],
    transform: Callable[[Any], torch.Tensor],
    batch_size: int = 32,
    workers: int = 0,
    limit: int = TRAIN_IMAGES,
) -> DataLoader:
    """A loader over a seeded sample of ``records`` with the checkpoint's evaluation ``transform``."""
    sample = random.Random(0).sample(records, min(limit, len(records)))
    return DataLoader(
        XrayDataset(sample, transform),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_readable,
    )


def features_and_logits(
    model: nn.Module, layers: list[str], loader: DataLoader, device: torch.device, show: bool = False
) -> tuple[np.ndarray, torch.Tensor, list[int]]:
    """The out-of-domain features and logits of every image in ``loader`` (one forward pass each), and each
    layer's feature width."""
    with FeatureTap(model, layers) as tap:
        logits, _ = collect_logits(model, loader, device, "features", show)
        features = tap.take()
    return features, logits, [tap.widths[name] for name in layers]


def refit_domain(
    model: nn.Module,
    meta: CheckpointMeta,
    train_loader: DataLoader,
    val_features: np.ndarray,
    val_logits: torch.Tensor,
    device: torch.device,
    show: bool = False,
) -> DomainDetector:
    """Fit the detector on the training images and cut it on the validation ones; set it on ``meta``.

    Args:
        val_features, val_logits: from :func:`features_and_logits` on the validation images (the
            calibration pass reuses its own).
    """
    layers = feature_layers(meta.arch)
    train_features, _, dims = features_and_logits(model, layers, train_loader, device, show)
    detector = fit_domain(
        train_features,
        val_features,
        layers,
        dims,
        fitted_on={"split": meta.split.get("file", "") if isinstance(meta.split, dict) else ""},
        network_sha256=network_sha256(model),
    )
    margins = (val_logits[:, 1] - val_logits[:, 0]).numpy()[:REFERENCE_MARGINS]
    meta.domain = {
        **detector.summary(),
        "reference_margins": [round(float(m), 4) for m in margins],
        "reference_scores": [round(float(s), 4) for s in detector.scores(val_features)],
    }
    meta.domain_state = detector.state()
    tqdm.write(
        f"out-of-domain: {detector.summary_line()}; fitted on {len(train_features)} training images, "
        f"cut on {len(val_features)} validation images"
    )
    return detector


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m training.domain``."""
    parser = argparse.ArgumentParser(prog="python -m training.domain", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="the checkpoint to fit (rewritten in place)")
    parser.add_argument("--data-dir", required=True, help="ImageFolder root the split refers to")
    parser.add_argument("--split-file", required=True, help="the checkpoint's split JSON (train and val parts)")
    parser.add_argument("--train-images", type=int, default=TRAIN_IMAGES)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-export", action="store_true", help="leave the ONNX and int8 files as they are")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(args: argparse.Namespace) -> int:
    """Fit, save, re-export; 0 on success, 2 on a bad checkpoint or split."""
    try:
        path = Path(args.checkpoint)
        model, meta = load_checkpoint(path)
        parts = load_split(args.split_file, args.data_dir)
        device = resolve_device(args.device)
        model = model.to(device).eval()
        show = not args.no_progress
        val_features, val_logits, _ = features_and_logits(
            model,
            feature_layers(meta.arch),
            domain_loader(parts["val"], meta.eval_transform(), args.batch_size, limit=10**9),
            device,
            show,
        )
        train = domain_loader(parts["train"], meta.eval_transform(), args.batch_size, limit=args.train_images)
        refit_domain(model, meta, train, val_features, val_logits, device, show)
        save_checkpoint(path, model.cpu(), meta)
        if not args.no_export:
            _reexport(path, meta, args)
    except (CheckpointError, ValueError, OSError) as error:
        report_error(error)
        return 2
    return 0


def _reexport(path: Path, meta: CheckpointMeta, args: argparse.Namespace) -> None:
    """Re-export the ONNX file with the features output, and the int8 model when there was one."""
    from core.onnx_export import export_onnx
    from core.onnx_runtime import onnx_path

    if meta.int8:  # re-made from a fresh ONNX export, with its own calibration and acceptance checks
        from core.onnx_export import main as export_main

        export_main(
            argparse.Namespace(
                checkpoints=[str(path)],
                int8=True,
                data_dir=args.data_dir,
                split_file=args.split_file,
                calibration_images=128,
            )
        )
    elif meta.onnx_sha256 or onnx_path(path).is_file():
        print(f"exported {export_onnx(path)}")


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
