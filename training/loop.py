"""One training epoch and batched scoring, shared by train and evaluate."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.inference import forward_logits


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    show_progress: bool = True,
    memory_format: torch.memory_format = torch.contiguous_format,
    averaged: torch.optim.swa_utils.AveragedModel | None = None,
    amp: bool = False,
    mixup: float = 0.0,
) -> dict[str, float]:
    """Train for one pass over ``loader``.

    Args:
        averaged: a weight average (EMA) updated after every optimizer step.
        amp: mixed precision on CUDA: bf16 autocast where the GPU supports it (no loss
            scaling needed), else fp16 with a gradient scaler. Ignored on the CPU, where
            bf16 autocast measured slower on these cores (README, Speed).
        mixup: Beta(``mixup``, ``mixup``) concentration of :func:`mix_batch`; 0 trains on the images as they are.

    Returns:
        ``{"train_loss": mean loss, "train_accuracy": accuracy on the seen batches, "train_side": the
        input side the epoch trained at}``.
    """
    model.train()
    total_loss, correct, seen, side = 0.0, 0, 0, 0
    amp = amp and device.type == "cuda"
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dtype == torch.float16)
    bar = tqdm(loader, desc=f"epoch {epoch} train", leave=False, disable=not show_progress, unit="batch")
    for images, labels in bar:
        if not len(labels):  # every image of the batch was unreadable (warned by the dataset)
            continue
        side = images.shape[-1]
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        labels = labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        images, partners, weight = mix_batch(images, labels, mixup)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            logits = model(images)
            loss = criterion(logits.float(), labels)
            if weight < 1.0:
                loss = weight * loss + (1.0 - weight) * criterion(logits.float(), partners)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if averaged is not None:
            averaged.update_parameters(model)
        total_loss += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1), "train_side": side}


def mix_batch(images: torch.Tensor, labels: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al., 2018): every image blended with a partner from the same batch.

    Blends between the classes discourage the over-confident, brittle boundary
    that in-distribution training draws; the loss is the same blend of the two
    labels' losses. Draws from torch's global random source (seeded by training).

    Args:
        alpha: Beta(alpha, alpha) concentration of the blend weight; 0 disables mixup.

    Returns:
        ``(mixed images, partner labels, weight of the original images)``; with
        ``alpha == 0`` the images unchanged, the labels and weight 1.
    """
    if alpha < 0:
        raise ValueError(f"--mixup must be >= 0, got {alpha}")
    if not alpha or len(labels) < 2:
        return images, labels, 1.0
    weight = float(torch.distributions.Beta(float(alpha), float(alpha)).sample())
    weight = max(weight, 1.0 - weight)  # the original image dominates, so its label stays the main target
    order = torch.randperm(len(labels)).to(labels.device)
    return weight * images + (1.0 - weight) * images[order], labels[order], weight


def collect_logits(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    desc: str = "score",
    show_progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over ``loader`` and return ``(logits, labels)`` on the CPU.

    Uses :func:`core.inference.forward_logits`, the forward pass of every other scorer.
    """
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not show_progress, unit="batch"):
        if not len(labels):
            continue
        all_logits.append(forward_logits(model, images, device))
        all_labels.append(labels)
    if not all_logits:
        return torch.empty(0, 2), torch.empty(0, dtype=torch.long)
    return torch.cat(all_logits), torch.cat(all_labels)
