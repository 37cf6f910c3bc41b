"""Export a checkpoint's network to ONNX for serving (:mod:`core.onnx_runtime` runs it).

The export sits beside the checkpoint (``best_model.pth`` -> ``best_model.onnx``)
and its SHA-256 is recorded in the checkpoint, so a stale or swapped file is
refused rather than used. A serving manifest (``best_model.serving.json`` and
``best_model.domain.npz``) lets a server answer calls before torch is imported.
PyTorch stays for training and Grad-CAM.

    python -m core.onnx_export models/best_model.pth      # export an existing checkpoint
    python -m core.onnx_export CHECKPOINT --int8 --data-dir DIR --split-file SPLIT   # also int8 (core.quantization)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from core.checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint
from core.cli import report_error
from core.data import load_split
from core.domain import FeatureTap, feature_layers
from core.images import load_image
from core.inference import write_serving_files
from core.onnx_runtime import FEATURES_OUTPUT, int8_path, onnx_path
from core.quantization import quantize_int8


class _WithFeatures(torch.nn.Module):
    """The network returning its logits and the out-of-domain features of the same pass (``core.domain``)."""

    def __init__(self, model: torch.nn.Module, layers: list[str]):
        super().__init__()
        self.model, self.layers = model, layers

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with FeatureTap(self.model, self.layers) as tap:
            logits = self.model(images)
        return logits, tap.take_tensor()


def export_onnx(checkpoint: str | Path) -> Path:
    """Export the checkpoint's network (dynamic batch) and record the file's hash in the checkpoint.

    The file has two outputs: ``logits`` and, for the out-of-domain score, ``features``.

    Returns:
        The ONNX file's path.
    """
    model, meta = load_checkpoint(checkpoint)
    target = onnx_path(checkpoint)
    example = torch.zeros(1, 3, meta.image_size, meta.image_size)
    layers = feature_layers(meta.arch)
    network = _WithFeatures(model, layers) if layers else model
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for these CNNs
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (example,),
            str(target),
            dynamo=False,
            input_names=["images"],
            output_names=["logits", FEATURES_OUTPUT] if layers else ["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, FEATURES_OUTPUT: {0: "batch"}},
            opset_version=17,
        )
    meta.onnx_sha256 = file_sha256(target)
    save_checkpoint(checkpoint, model, meta)
    write_serving_files(checkpoint, model, meta)  # calls served without torch (core.onnx_runtime.serving_path)
    return target


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the export command."""
    parser = argparse.ArgumentParser(prog="python -m core.onnx_export", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files; each gets <name>.onnx beside it")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also quantize to int8 (needs --data-dir and --split-file: calibration images from the "
        "training part, acceptance checks on the validation part)",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split-file", default=None, help="the split.json of the checkpoint's training run")
    parser.add_argument("--calibration-images", type=int, default=128)
    return parser


def _int8(checkpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    import random

    if not args.data_dir or not args.split_file:
        raise CheckpointError("--int8 needs --data-dir and --split-file")
    parts = load_split(args.split_file, args.data_dir)
    sample = random.Random(0).sample(parts["train"], min(args.calibration_images, len(parts["train"])))
    return quantize_int8(
        checkpoint,
        [load_image(r.path) for r in sample],
        [load_image(r.path) for r in parts["val"]],
        [r.label for r in parts["val"]],
    )


def main(args: argparse.Namespace) -> int:
    """Export each checkpoint; returns the exit status."""
    failures = 0
    for checkpoint in args.checkpoints:
        try:
            print(f"wrote {export_onnx(checkpoint)}")
            if args.int8:
                record = _int8(checkpoint, args)
                print(
                    f"wrote {int8_path(checkpoint)}: validation ROC-AUC {record['val_roc_auc']:.4f} "
                    f"(fp32 {record['fp32_val_roc_auc']:.4f}), calls agree on {record['agreement']:.3f}, "
                    f"own temperature {record['temperature']:.3f} and threshold {record['threshold']:.4f}"
                )
        except (CheckpointError, OSError, RuntimeError, ValueError) as error:
            report_error(error)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
