"""Training-speed benchmark: images per second of the training loop on real X-rays, on the CPU.

    python benchmarks/training.py --data-dir ../shared/data/chest_xray/train [--images 320] [--no-compile]

For the standard and the robust recipe (EfficientNet-Lite0, 6 frozen stages, batch 32,
2 loader workers, as ``training.train``) it times one pass over the same images with
(a) three-channel augmentation and an eager step, the pipeline before this benchmark,
(b) gray images augmented as one channel (pixel-identical, ``core.transforms``), and
(c) (b) with ``--compile`` (``torch.compile``; its one-off compile time printed apart).
All in one run, interleaved, best of ``--rounds``, so the ratios hold on a noisy machine.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import cast

import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import XrayDataset, collate_readable, scan_image_folder  # noqa: E402
from core.models import freeze_stages, get_model, get_spec  # noqa: E402
from core.transforms import train_transform  # noqa: E402
from training.engine import train_one_epoch  # noqa: E402

MODEL = "efficientnet_lite0"


def _loader(records, robust: bool, one_channel: bool, workers: int) -> DataLoader:
    spec = get_spec(MODEL)
    transform = train_transform(
        spec.image_size,
        spec.mean,
        spec.std,
        scale=(0.6, 1.0) if robust else (0.85, 1.0),
        site_shifts=robust,
        one_channel_when_gray=one_channel,
    )
    return DataLoader(
        XrayDataset(records, transform),
        batch_size=32,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
        collate_fn=collate_readable,
    )


def _images_per_second(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer) -> float:
    criterion = nn.CrossEntropyLoss()
    start = time.perf_counter()
    train_one_epoch(model, loader, criterion, optimizer, torch.device("cpu"), 1, False, torch.channels_last)
    return len(cast(XrayDataset, loader.dataset)) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    records = random.Random(0).sample(scan_image_folder(args.data_dir), args.images)
    torch.manual_seed(0)
    model = get_model(MODEL, pretrained="imagenet")
    freeze_stages(model, MODEL, 6)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    warm = records[:64]
    _images_per_second(model, _loader(warm, False, True, 0), optimizer)  # first-call costs out of the figures
    compiled = None
    if args.compile:
        compiled = cast(nn.Module, torch.compile(model))
        start = time.perf_counter()
        _images_per_second(compiled, _loader(warm, False, True, 0), optimizer)
        print(f"torch.compile: first steps (compilation) {time.perf_counter() - start:.0f} s")
    print(
        f"{MODEL}, {args.images} images, batch 32, {args.workers} loader workers, torch threads "
        f"{torch.get_num_threads()}, CPU (images/s of the training loop, higher is better)"
    )
    configs = [("three-channel eager", False, model), ("one-channel eager", True, model)]
    if compiled is not None:
        configs.append(("one-channel compiled", True, compiled))
    for robust in (False, True):
        best: dict[str, float] = {}
        for _ in range(args.rounds):  # interleaved rounds, best of each: a busy moment hits one, not all
            for name, one_channel, network in configs:
                rate = _images_per_second(network, _loader(records, robust, one_channel, args.workers), optimizer)
                best[name] = max(best.get(name, 0.0), rate)
        before = best[configs[0][0]]
        figures = "   ".join(f"{name} {rate:5.1f} ({rate / before:.2f}x)" for name, rate in best.items())
        print(f"{'robust' if robust else 'standard':8s}  {figures}", flush=True)


if __name__ == "__main__":
    main()
