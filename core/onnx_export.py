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

from core.cam import CAM_OUTPUT
from core.checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint
from core.cli import report_error
from core.data import load_split
from core.domain import FeatureTap, feature_layers, final_linear
from core.images import load_image
from core.inference import write_serving_files
from core.networks import get_spec
from core.onnx_runtime import FEATURES_OUTPUT, int8_path, onnx_path
from core.quantization import quantize_int8


class _CamTap:
    """Forward hooks that keep the CAM layers' activations of one pass (traceable, for the export)."""

    def __init__(self, model: torch.nn.Module, layers: list[str]):
        self.model, self.layers = model, layers
        self.activations: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> _CamTap:
        for name in self.layers:
            hook = self.model.get_submodule(name).register_forward_hook(
                lambda _m, _i, output, n=name: self.activations.__setitem__(n, output)
            )
            self._handles.append(hook)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()


def grad_cam_maps(
    activations: torch.Tensor, weight: torch.Tensor, clip: tuple[float, float] | None, scale: float = 1.0
) -> torch.Tensor:
    """Raw Grad-CAM maps ``sum_k alpha_ck A_k`` of every class ``c``, ``(N, classes, h, w)``, from one pass.

    With the CAM layer followed only by ``clip`` (an activation clipping to those bounds, or none), a
    global average pool and a linear head of ``weight`` ``W`` ``(classes, k)``, Grad-CAM's weight
    ``alpha_ck`` (the spatial mean of d logit_c / d A_k) is ``scale * W_ck / hw`` times the share of
    positions where the activation passes the gradient.

    Args:
        scale: d logits / d member logits (``1 / members`` for a logit-averaging ensemble).
    """
    n, k, h, w = activations.shape
    if clip is None:
        share = torch.ones(n, k, dtype=activations.dtype)
    else:  # hardtanh's backward passes the gradient strictly inside the bounds
        share = ((activations > clip[0]) & (activations < clip[1])).to(activations.dtype).mean((2, 3))
    alpha = weight.unsqueeze(0) * share.unsqueeze(1) * (scale / (h * w))
    return torch.bmm(alpha, activations.reshape(n, k, h * w)).reshape(n, -1, h, w)


class _ServingGraph(torch.nn.Module):
    """The network returning its logits, the out-of-domain features (``core.domain``) and the raw Grad-CAM
    maps (``core.cam``) of the same pass."""

    def __init__(self, model: torch.nn.Module, arch: str):
        super().__init__()
        spec = get_spec(arch)
        self.model, self.feature_layers = model, feature_layers(arch)
        self.cam_layers, self.cam_clip = spec.cam_layer.split(","), spec.cam_clip
        # Each CAM layer's own linear head: the network's, or its ensemble member's.
        heads = [final_linear(model.get_submodule(name.rpartition(".")[0])) for name in self.cam_layers]
        self.head_weights: list[torch.Tensor] = [head.weight for head in heads]  # type: ignore[misc]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with FeatureTap(self.model, self.feature_layers) as features, _CamTap(self.model, self.cam_layers) as cams:
            logits = self.model(images)
        scale = 1.0 / len(self.cam_layers)  # one layer, or an ensemble averaging its members' logits
        maps = [
            grad_cam_maps(cams.activations[name], weight, self.cam_clip, scale)
            for name, weight in zip(self.cam_layers, self.head_weights, strict=True)
        ]
        outputs = (logits, features.take_tensor()) if self.feature_layers else (logits,)
        return (*outputs, torch.stack(maps, 1))


def export_onnx(checkpoint: str | Path) -> Path:
    """Export the checkpoint's network (dynamic batch) and record the file's hash in the checkpoint.

    The file's outputs: ``logits``; for the out-of-domain score, ``features`` (when the architecture has
    domain layers); and the raw Grad-CAM maps ``cam`` ``(N, layers, classes, h, w)`` (:mod:`core.cam`).

    Returns:
        The ONNX file's path.
    """
    model, meta = load_checkpoint(checkpoint)
    target = onnx_path(checkpoint)
    example = torch.zeros(1, 3, meta.image_size, meta.image_size)
    network = _ServingGraph(model, meta.arch)
    names = ["logits", FEATURES_OUTPUT] if network.feature_layers else ["logits"]
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for these CNNs
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (example,),
            str(target),
            dynamo=False,
            input_names=["images"],
            output_names=[*names, CAM_OUTPUT],
            dynamic_axes={name: {0: "batch"} for name in ["images", *names, CAM_OUTPUT]},
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
