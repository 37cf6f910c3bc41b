"""ONNX Runtime serving: export a checkpoint's network to ONNX and run it behind ``Predictor``.

The export sits beside the checkpoint (``best_model.pth`` -> ``best_model.onnx``)
and its SHA-256 is recorded in the checkpoint, so a stale or swapped file is
refused rather than used. PyTorch stays for training and Grad-CAM.

    python -m core.onnx_export models/best_model.pth      # export an existing checkpoint
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint
from core.cli import report_error


def onnx_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's ONNX export lives."""
    return Path(checkpoint).with_suffix(".onnx")


def export_onnx(checkpoint: str | Path) -> Path:
    """Export the checkpoint's network (dynamic batch) and record the file's hash in the checkpoint.

    Returns:
        The ONNX file's path.
    """
    model, meta = load_checkpoint(checkpoint)
    target = onnx_path(checkpoint)
    example = torch.zeros(1, 3, meta.image_size, meta.image_size)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for these CNNs
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(target),
            dynamo=False,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    meta.onnx_sha256 = file_sha256(target)
    save_checkpoint(checkpoint, model, meta)
    return target


class OnnxNetwork:
    """An ONNX Runtime session that takes and returns tensors like the torch module it replaces."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        images = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["logits"], {"images": images})[0])


def load_onnx_network(checkpoint: str | Path, meta: Any) -> OnnxNetwork | None:
    """The checkpoint's verified ONNX export, or ``None`` when there is none or onnxruntime is not installed.

    Raises:
        CheckpointError: an ONNX file is there but its hash is not the one the checkpoint recorded.
    """
    path = onnx_path(checkpoint)
    if not meta.onnx_sha256 or not path.is_file():
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if file_sha256(path) != meta.onnx_sha256:
        raise CheckpointError(
            f"{path} is not the ONNX export recorded in {checkpoint} (stale or swapped); "
            f"re-export with python -m core.onnx_export {checkpoint}"
        )
    return OnnxNetwork(path)


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the export command."""
    parser = argparse.ArgumentParser(prog="python -m core.onnx_export", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files; each gets <name>.onnx beside it")
    return parser


def main(args: argparse.Namespace) -> int:
    """Export each checkpoint; returns the exit status."""
    failures = 0
    for checkpoint in args.checkpoints:
        try:
            print(f"wrote {export_onnx(checkpoint)}")
        except (CheckpointError, OSError, RuntimeError) as error:
            report_error(error)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
