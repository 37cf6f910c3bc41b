"""Inference benchmark: single-image latency (p50/p95) and batch throughput on CPU.

    python benchmarks/inference.py [--checkpoint models/best_model.pth] [--runs 50] [--batch 32] [--batches 15]

Backends take turns in blocks (eager, ONNX Runtime fp32, int8 when the checkpoint has one), so
each figure is printed beside the eager one of the same run. Prints figures; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.checkpoint import load_checkpoint  # noqa: E402
from core.inference import Predictor, default_checkpoint  # noqa: E402
from core.onnx_export import export_onnx  # noqa: E402


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (224, 224), dtype=np.uint8)).convert("RGB")


def _measure(
    predictors: dict[str, Predictor], runs: int, batch: int, batches: int, rounds: int = 3
) -> dict[str, tuple[float, float, float]]:
    """Batch-1 p50 / p95 (ms) and median batch throughput (img/s) of each predictor.

    The backends take turns in ``rounds`` blocks, so a slow spell of this shared machine falls
    on all of them alike and the ratios to eager hold. Not call by call: a backend's thread
    pool keeps spinning for a while after its call and would slow the next backend's call,
    so each block starts after a pause and an untimed call.
    """
    images = [_image(i) for i in range(batch)]
    latencies: dict[str, list[float]] = {name: [] for name in predictors}
    throughputs: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        predictor.batch_size = batch
    for round_ in range(rounds):
        for name, predictor in predictors.items():
            time.sleep(0.5)
            for _ in range(3 if round_ == 0 else 1):  # warm-up
                predictor.predict_proba([_image(0)])
            for i in range(round_, runs, rounds):
                start = time.perf_counter()
                predictor.predict_proba([_image(i)])
                latencies[name].append((time.perf_counter() - start) * 1000)
            predictor.predict_proba(images)
            for _ in range(round_, batches, rounds):
                start = time.perf_counter()
                predictor.predict_proba(images)
                throughputs[name].append(batch / (time.perf_counter() - start))
    figures = {}
    for name in predictors:
        ordered = sorted(latencies[name])
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        figures[name] = (statistics.median(ordered), p95, statistics.median(throughputs[name]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=15, help="timed batches per backend (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
        if not load_checkpoint(checkpoint)[1].onnx_sha256:  # measure ONNX on an exported copy
            copy = Path(folder) / checkpoint.name
            shutil.copy(checkpoint, copy)
            export_onnx(copy)
            checkpoint = copy
        eager = Predictor.from_checkpoint(checkpoint, "cpu", backend="torch")
        onnx = Predictor.from_checkpoint(checkpoint, "cpu", backend="onnx")
        backends = {"torch": eager, "onnxruntime": onnx}
        if load_checkpoint(checkpoint)[1].int8:
            int8 = Predictor.from_checkpoint(checkpoint, "cpu", backend="int8")
            backends["onnx int8"] = int8
            print(f"int8 input: {'uint8 pixels' if int8.takes_pixels else 'normalised float images'}")
        print(f"model {eager.version}  torch threads {torch.get_num_threads()}  cpu (decoded image -> calibrated p)")
        figures = _measure(backends, args.runs, args.batch, args.batches)
    for name, (p50, p95, throughput) in figures.items():
        print(
            f"{name:12s} batch 1: p50 {p50:6.1f} ms  p95 {p95:6.1f} ms   "
            f"batch {args.batch}: {throughput:6.1f} img/s (median of {args.batches})"
        )
    t50, _, tput = figures["torch"]
    for name, (o50, _, oput) in figures.items():
        if name != "torch":
            print(f"{name} vs torch (same run): batch 1 {t50 / o50:.2f}x faster, batch {args.batch} {oput / tput:.2f}x")


if __name__ == "__main__":
    main()
