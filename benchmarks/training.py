"""Training-speed benchmark: images per second of the training loop on real X-rays.

    python benchmarks/training.py --data-dir ../shared/data/chest_xray/train [--images 320] [--no-compile]
    python benchmarks/training.py --data-dir DIR --device cuda --batch-size 128 --workers 14 --images 4096

For the standard and the robust recipe (EfficientNet-Lite0, 6 frozen stages, as
``training.train``) it times one pass over the same images with each configuration:

- CPU: (a) three-channel augmentation, eager (the pipeline before this benchmark),
  (b) gray images augmented as one channel (pixel-identical, ``core.transforms``),
  (c) (b) with ``--compile`` (``torch.compile``), (d) (c) at ``--low-res-size``.
- CUDA: fp32 eager, mixed precision (``--amp``) eager, ``--amp --compile``, the
  same at ``--low-res-size``; and the step alone on one ready batch (no loader),
  which says whether the loader or the GPU sets the pace.

Below each recipe, the rate of progressive-resizing runs (``training.train --compile
--low-res-size S --low-res-epochs K`` of ``--epochs`` epochs), computed from the
measured compiled full- and low-resolution rates. Passes are timed from their
first batch on (loader start-up is paid once per run, not per batch). All in one
run, interleaved, best of ``--rounds``, so the ratios hold on a noisy machine
(one-off compile times printed apart). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import NamedTuple, cast

import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import XrayDataset, collate_readable, scan_image_folder  # noqa: E402
from core.inference import resolve_device  # noqa: E402
from core.networks import freeze_stages, get_model, get_spec  # noqa: E402
from core.transforms import train_transform  # noqa: E402
from training.loop import train_one_epoch  # noqa: E402

MODEL = "efficientnet_lite0"


class Config(NamedTuple):
    name: str
    one_channel: bool
    network: nn.Module
    amp: bool
    size: int


def _loader(records, robust: bool, one_channel: bool, size: int, args: argparse.Namespace) -> DataLoader:
    spec = get_spec(MODEL)
    transform = train_transform(
        size,
        spec.mean,
        spec.std,
        scale=(0.6, 1.0) if robust else (0.85, 1.0),
        site_shifts=robust,
        one_channel_when_gray=one_channel,
    )
    return DataLoader(
        XrayDataset(records, transform),
        batch_size=args.batch_size,
        shuffle=False,
        drop_last=True,  # as training.train: one batch shape per side
        num_workers=args.workers,
        collate_fn=collate_readable,
        pin_memory=args.device.type == "cuda",
    )


class _ClockFromFirstBatch:
    """Iterates batches, starting a clock when the first arrives and counting the images after it.

    Worker start-up and the first batch's latency are paid once per training run, not
    per batch; on a short benchmark pass they would dilute every ratio.
    """

    def __init__(self, batches) -> None:
        self.batches, self.start, self.counted = batches, 0.0, 0

    def __iter__(self):
        batches = iter(self.batches)
        first = next(batches)
        self.start = time.perf_counter()
        yield first
        for images, labels in batches:
            self.counted += len(labels)
            yield images, labels


def _images_per_second(config: Config, batches, optimizer: torch.optim.Optimizer, device) -> float:
    """Images per second after the first batch (which is trained on but not counted)."""
    timed = _ClockFromFirstBatch(batches)
    loop = cast(DataLoader, timed)
    train_one_epoch(
        config.network, loop, nn.CrossEntropyLoss(), optimizer, device, 1, False, torch.channels_last, amp=config.amp
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return timed.counted / (time.perf_counter() - timed.start)


def _step_only(config: Config, optimizer: torch.optim.Optimizer, device, batch_size: int, steps: int = 20) -> float:
    """Images per second of the step alone: no loader, one ready batch copied from host memory each step."""
    batch = (torch.randn(batch_size, 3, config.size, config.size), torch.randint(0, 2, (batch_size,)))
    _images_per_second(config, [batch] * steps, optimizer, device)  # warm-up
    return _images_per_second(config, [batch] * steps, optimizer, device)


def _progressive_rate(full: float, low: float, epochs: int, low_epochs: int) -> float:
    return epochs / (low_epochs / low + (epochs - low_epochs) / full)


def _configs(args: argparse.Namespace, model: nn.Module, compiled: nn.Module | None, size: int) -> list[Config]:
    low = args.low_res_size
    if args.device.type == "cuda":
        configs = [Config("fp32 eager", True, model, False, size), Config("amp eager", True, model, True, size)]
        if compiled is not None:
            configs += [Config("amp compiled", True, compiled, True, size)]
            configs += [Config(f"amp compiled {side} px", True, compiled, True, side) for side in low]
        return configs
    configs = [
        Config("three-channel eager", False, model, False, size),
        Config("one-channel eager", True, model, False, size),
    ]
    if compiled is not None:
        configs += [Config("one-channel compiled", True, compiled, False, size)]
        configs += [Config(f"one-channel compiled {side} px", True, compiled, False, side) for side in low]
    return configs


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--low-res-size", type=int, nargs="+", default=[160], help="one or more low sides to time")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the progressive run the last column prices")
    parser.add_argument("--low-res-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pretrained", default="imagenet", help="'imagenet' or a weights file")
    return parser


def main(args: argparse.Namespace) -> None:
    """Print the figures."""
    args.device = resolve_device(args.device)
    device = args.device
    size = get_spec(MODEL).image_size
    records = random.Random(0).sample(scan_image_folder(args.data_dir), args.images)
    torch.manual_seed(0)
    model = get_model(MODEL, pretrained=args.pretrained)
    freeze_stages(model, MODEL, 6)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    warm = records[: 2 * args.batch_size]
    first = Config("warm-up", True, model, device.type == "cuda", size)
    _images_per_second(first, _loader(warm, False, True, size, args), optimizer, device)  # first-call costs out
    compiled = cast(nn.Module, torch.compile(model, dynamic=False)) if args.compile else None
    configs = _configs(args, model, compiled, size)
    for config in configs:
        if config.network is compiled:
            start = time.perf_counter()
            _images_per_second(config, _loader(warm, False, True, config.size, args), optimizer, device)
            print(f"torch.compile at {config.size} px: first steps (compilation) {time.perf_counter() - start:.0f} s")
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, torch threads {torch.get_num_threads()}"
    )
    print(
        f"{MODEL}, {args.images} images, batch {args.batch_size}, {args.workers} loader workers, {where} "
        f"(images/s of the training loop, higher is better)"
    )
    if device.type == "cuda":
        steps = "   ".join(f"{c.name} {_step_only(c, optimizer, device, args.batch_size):7.0f}" for c in configs)
        print(f"step alone (no loader; batch copied from host memory): {steps}", flush=True)
    for robust in (False, True):
        best: dict[str, float] = {}
        for _ in range(args.rounds):  # interleaved rounds, best of each: a busy moment hits one, not all
            for config in configs:
                loader = _loader(records, robust, config.one_channel, config.size, args)
                best[config.name] = max(
                    best.get(config.name, 0.0), _images_per_second(config, loader, optimizer, device)
                )
        before = best[configs[0].name]
        figures = "   ".join(f"{name} {rate:6.1f} ({rate / before:.2f}x)" for name, rate in best.items())
        print(f"{'robust' if robust else 'standard':8s}  {figures}", flush=True)
        full = next((c for c in configs if c.network is compiled and c.size == size), None)
        for config in configs:
            if full is None or config.size == size:
                continue
            for low_epochs in sorted({args.low_res_epochs, args.epochs - 1}):
                run = _progressive_rate(best[full.name], best[config.name], args.epochs, low_epochs)
                print(
                    f"          => training.train --compile --low-res-size {config.size} --low-res-epochs {low_epochs} "
                    f"of {args.epochs} epochs: {run:6.1f} img/s ({run / before:.2f}x)",
                    flush=True,
                )


if __name__ == "__main__":
    main(get_args_parser().parse_args())
