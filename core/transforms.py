"""Image transforms for training and inference.

The shared training images were resized to a square without keeping the aspect
ratio, so inference does the same (a plain square resize) to see what training saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:  # torch is imported where a tensor is made: the ONNX call path never needs it
    import torch

INTENSITY_MODES = ("none", "equalize")
"""Per-image intensity normalisation a checkpoint can ask for (``CheckpointMeta.intensity``)."""


def check_intensity(mode: str) -> str:
    """``mode`` when it is one of :data:`INTENSITY_MODES`.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in INTENSITY_MODES:
        raise ValueError(f"unknown intensity normalisation {mode!r}; known: {', '.join(INTENSITY_MODES)}")
    return mode


def normalize_intensity(image: Image.Image, mode: str) -> Image.Image:
    """Apply a checkpoint's per-image intensity normalisation.

    ``"equalize"`` is histogram equalisation of the gray levels, so exposure and
    contrast differences between sites mostly vanish before the network sees the
    image; training and inference apply it to the image the network is given (after
    any augmentation), so both see the same kind of input.

    Raises:
        ValueError: an unknown mode.
    """
    return ImageOps.equalize(image) if check_intensity(mode) == "equalize" else image


def is_gray(image: Image.Image) -> bool:
    """True for a one-channel image, or an RGB image whose three channels are identical (an X-ray)."""
    if image.mode == "L":
        return True
    if image.mode != "RGB":
        return False
    array = np.asarray(image)
    return bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())


class EvalTransform:
    """Deterministic preprocessing for validation, test and prediction: square resize, [0, 1], normalise.

    The same arithmetic as torchvision's ``Resize((s, s), antialias=True)``, ``ToTensor()`` and
    ``Normalize`` (a test compares them), without importing torchvision, which takes a second
    at start-up that the dashboard's first prediction would pay.
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], intensity: str = "none"):
        self.size = int(image_size)
        self.intensity = check_intensity(intensity)  # refuse an unknown mode now, not per image
        # ((x / 255) - mean) / std as one multiply-add per pixel, straight from uint8 into the output:
        # four times faster than the three-step float arithmetic, equal to it within 1e-6.
        mean64, std64 = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        self.scale = (1.0 / (255.0 * std64)).astype(np.float32).reshape(3, 1, 1)
        self.offset = (-mean64 / std64).astype(np.float32).reshape(3, 1, 1)

    def _sized(self, image: Image.Image) -> np.ndarray:
        """The image as ``(H, W)`` or ``(H, W, 3)`` uint8 pixels: square-resized, intensity-normalised."""
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        return np.asarray(normalize_intensity(image, self.intensity))

    def pixels(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """The ``(H, W, 3)`` uint8 pixels before normalisation (what an int8 model that takes pixels is given).

        Args:
            out: write into this ``(H, W, 3)`` uint8 array (a slot of a batch) instead of a new one.
        """
        pixels = self._sized(image)
        if out is None:
            out = np.empty((self.size, self.size, 3), dtype=np.uint8)
        out[...] = pixels[..., None] if pixels.ndim == 2 else pixels
        return out

    def array(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """The preprocessed ``(3, H, W)`` float32 array (what :meth:`__call__` wraps as a tensor).

        Args:
            out: write into this ``(3, H, W)`` float32 array (a slot of a batch) instead of a new one.
        """
        pixels = self._sized(image)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (1 or 3, H, W), no copy
        if out is None:
            out = np.empty((3, self.size, self.size), dtype=np.float32)
        np.multiply(pixels, self.scale, out=out, dtype=np.float32)
        out += self.offset
        return out

    def __call__(self, image: Image.Image) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.array(image))


def eval_transform(
    image_size: int, mean: Sequence[float], std: Sequence[float], intensity: str = "none"
) -> EvalTransform:
    """Deterministic preprocessing used for validation, test and prediction."""
    return EvalTransform(image_size, mean, std, intensity)


def train_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    hflip: bool = False,
    rotation: float = 10.0,
    scale: tuple[float, float] = (0.85, 1.0),
    color_jitter: float = 0.2,
    site_shifts: bool = False,
    intensity: str = "none",
    one_channel_when_gray: bool = True,
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
        intensity: per-image intensity normalisation (:func:`normalize_intensity`), applied last,
            to the image the network is given, as inference does.
        one_channel_when_gray: augment gray images as one channel (see Returns); ``False``
            keeps three (the earlier pipeline, for ``benchmarks/training.py``).

    Returns:
        A torchvision transform from PIL image to normalised tensor. Gray images (an RGB
        X-ray's three channels are equal) are augmented as one channel and repeated at the
        end: the same pixels as augmenting three equal channels, at a third of the work.
    """
    from torchvision import transforms as T  # imported here: inference never needs torchvision

    check_intensity(intensity)  # refuse an unknown mode now, not per image
    steps: list[Any] = [_gray_when_gray] if one_channel_when_gray else []
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
    if intensity != "none":
        steps.append(partial(normalize_intensity, mode=intensity))
    steps += [T.ToTensor(), _three_channels, T.Normalize(list(mean), list(std))]
    return T.Compose(steps)


def _gray_when_gray(image: Image.Image) -> Image.Image:
    return image.convert("L") if image.mode == "RGB" and is_gray(image) else image


def _three_channels(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.expand(3, -1, -1) if tensor.shape[0] == 1 else tensor


def to_batch(images: Sequence[Image.Image], transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """Stack transformed PIL images into one ``(N, 3, H, W)`` tensor."""
    import torch

    return torch.stack([transform(image) for image in images])
