"""Inference benchmark: single-image latency (p50/p95) and batch throughput on CPU.

    python benchmarks/inference.py [--checkpoint models/best_model.pth] [--runs 50] [--batch 32]

Prints figures; nothing here is asserted.
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


def _measure(predictor: Predictor, runs: int, batch: int, batches: int) -> tuple[float, float, float]:
    for _ in range(3):  # warm-up
        predictor.predict_proba([_image(0)])
    latencies = []
    for i in range(runs):
        start = time.perf_counter()
        predictor.predict_proba([_image(i)])
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    images = [_image(i) for i in range(batch)]
    predictor.batch_size = batch
    start = time.perf_counter()
    for _ in range(batches):
        predictor.predict_proba(images)
    return statistics.median(latencies), p95, batch * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=5)
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
        backends = [("torch", eager), ("onnxruntime", onnx)]
        if load_checkpoint(checkpoint)[1].int8:
            backends.append(("onnx int8", Predictor.from_checkpoint(checkpoint, "cpu", backend="int8")))
        print(f"model {eager.version}  torch threads {torch.get_num_threads()}  cpu (decoded image -> calibrated p)")
        figures = {name: _measure(p, args.runs, args.batch, args.batches) for name, p in backends}
    for name, (p50, p95, throughput) in figures.items():
        print(f"{name:12s} batch 1: p50 {p50:6.1f} ms  p95 {p95:6.1f} ms   batch {args.batch}: {throughput:6.1f} img/s")
    t50, _, tput = figures["torch"]
    for name, (o50, _, oput) in figures.items():
        if name != "torch":
            print(f"{name} vs torch (same run): batch 1 {t50 / o50:.2f}x faster, batch {args.batch} {oput / tput:.2f}x")


if __name__ == "__main__":
    main()
