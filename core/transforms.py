"""Image transforms for training and inference.

The shared training images were resized to a square without keeping the aspect
ratio, so inference does the same (a plain square resize) to see what training saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image


class EvalTransform:
    """Deterministic preprocessing for validation, test and prediction: square resize, [0, 1], normalise.

    The same arithmetic as torchvision's ``Resize((s, s), antialias=True)``, ``ToTensor()`` and
    ``Normalize`` (a test compares them), without importing torchvision, which takes a second
    at start-up that the dashboard's first prediction would pay.
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]):
        self.size = int(image_size)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        array = (array - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> EvalTransform:
    """Deterministic preprocessing used for validation, test and prediction."""
    return EvalTransform(image_size, mean, std)


def train_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    hflip: bool = False,
    rotation: float = 10.0,
    scale: tuple[float, float] = (0.85, 1.0),
    color_jitter: float = 0.2,
    site_shifts: bool = False,
) -> Callable[[Any], torch.Tensor]:
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
        site_shifts: also random framing, exposure, blur, noise and JPEG shifts
            (:class:`core.shifts.RandomSiteShift`), applied at 512 px before the crop.

    Returns:
        A torchvision transform from PIL image to normalised tensor.
    """
    from torchvision import transforms as T  # imported here: inference never needs torchvision

    steps: list[Any] = []
    if site_shifts:
        from core.shifts import RandomSiteShift

        steps += [T.Resize(512, antialias=True), RandomSiteShift()]
    steps.append(T.RandomResizedCrop((image_size, image_size), scale=scale, ratio=(0.9, 1.1), antialias=True))
    if rotation:
        steps.append(T.RandomRotation(rotation, interpolation=T.InterpolationMode.BILINEAR))
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    if color_jitter:
        steps.append(T.ColorJitter(brightness=color_jitter, contrast=color_jitter))
    steps += [T.ToTensor(), T.Normalize(list(mean), list(std))]
    return T.Compose(steps)


def to_batch(images: Sequence[Image.Image], transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """Stack transformed PIL images into one ``(N, 3, H, W)`` tensor."""
    return torch.stack([transform(image) for image in images])
