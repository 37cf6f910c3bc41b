"""Image transforms for training and inference.

The shared training images were resized to a square without keeping the aspect
ratio, so inference does the same (a plain square resize) to see what training saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision import transforms as T


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """Deterministic preprocessing used for validation, test and prediction."""
    return T.Compose(
        [
            T.Resize((image_size, image_size), antialias=True),
            T.ToTensor(),
            T.Normalize(list(mean), list(std)),
        ]
    )


def train_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    hflip: bool = False,
    rotation: float = 10.0,
    scale: tuple[float, float] = (0.85, 1.0),
    color_jitter: float = 0.2,
) -> T.Compose:
    """Random augmentation for training.

    Args:
        image_size: side of the square model input.
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
        hflip: mirror images at random. Off by default: a flip puts the heart
            on the wrong side, which no real frontal X-ray shows.
        rotation: maximum rotation in degrees.
        scale: range of the random crop's area, as a fraction of the image.
        color_jitter: brightness and contrast jitter strength (0 disables).

    Returns:
        A torchvision transform from PIL image to normalised tensor.
    """
    steps: list[torch.nn.Module] = [
        T.RandomResizedCrop((image_size, image_size), scale=scale, ratio=(0.9, 1.1), antialias=True),
    ]
    if rotation:
        steps.append(T.RandomRotation(rotation, interpolation=T.InterpolationMode.BILINEAR))
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    if color_jitter:
        steps.append(T.ColorJitter(brightness=color_jitter, contrast=color_jitter))
    steps += [T.ToTensor(), T.Normalize(list(mean), list(std))]
    return T.Compose(steps)


def to_batch(images: Sequence[Image.Image], transform: T.Compose) -> torch.Tensor:
    """Stack transformed PIL images into one ``(N, 3, H, W)`` tensor."""
    return torch.stack([transform(image) for image in images])
