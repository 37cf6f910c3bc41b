"""Inference benchmark: single-image latency (p50/p95) and batch throughput on CPU.

    python benchmarks/inference.py [--checkpoint models/best_model.pth] [--runs 50] [--batch 32]

Prints figures; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.inference import Predictor  # noqa: E402


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (224, 224), dtype=np.uint8)).convert("RGB")


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
    predictor = Predictor.from_checkpoint(args.checkpoint, "cpu")
    print(f"model {predictor.version}  threads {torch.get_num_threads()}  device cpu")
    for _ in range(3):  # warm-up
        predictor.predict_proba([_image(0)])
    latencies = []
    for i in range(args.runs):
        start = time.perf_counter()
        predictor.predict_proba([_image(i)])
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    print(f"single image: p50 {statistics.median(latencies):.1f} ms  p95 {p95:.1f} ms  ({args.runs} runs)")
    images = [_image(i) for i in range(args.batch)]
    predictor.batch_size = args.batch
    start = time.perf_counter()
    for _ in range(args.batches):
        predictor.predict_proba(images)
    elapsed = time.perf_counter() - start
    print(f"batch {args.batch}: {args.batch * args.batches / elapsed:.1f} img/s ({args.batches} batches)")


if __name__ == "__main__":
    main()
