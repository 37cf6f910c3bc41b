"""Named, deterministic image perturbations that mimic how X-rays differ between sites.

Used to simulate a new site (``benchmarks/site_adaptation.py``) and to stress a
model. Every perturbation keeps the label: it changes framing, exposure or
texture, never the anatomy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter


def zoom(image: Image.Image, keep: float) -> Image.Image:
    """Tighter framing: a centre crop keeping ``keep`` of each side, resized back."""
    width, height = image.size
    dx, dy = round(width * (1 - keep) / 2), round(height * (1 - keep) / 2)
    return image.crop((dx, dy, width - dx, height - dy)).resize(image.size, Image.Resampling.BILINEAR)


def gamma(image: Image.Image, value: float) -> Image.Image:
    """A different exposure curve: gray levels ``(x / 255) ** value``."""
    table = [round(255 * (i / 255) ** value) for i in range(256)]
    return image.point(table * len(image.getbands()))


def contrast_window(image: Image.Image, low: float, high: float) -> Image.Image:
    """A different window: gray levels in ``[low, high]`` (0-1) stretched to the full range."""
    table = [round(255 * min(max((i / 255 - low) / (high - low), 0.0), 1.0)) for i in range(256)]
    return image.point(table * len(image.getbands()))


def blur(image: Image.Image, radius: float) -> Image.Image:
    """A softer detector or more scatter: Gaussian blur of ``radius`` pixels."""
    return image.filter(ImageFilter.GaussianBlur(radius))


def site_shift(image: Image.Image) -> Image.Image:
    """The simulated site: 18 % tighter framing, a brighter exposure curve (gamma 0.75), a softer image."""
    return blur(gamma(zoom(image, 0.82), 0.75), 0.8)


SHIFTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "zoom_in_12": lambda image: zoom(image, 0.88),
    "blur_0.8": lambda image: blur(image, 0.8),
    "gamma_0.8": lambda image: gamma(image, 0.8),
    "window_5_95": lambda image: contrast_window(image, 0.05, 0.95),
    "site": site_shift,
}
"""Perturbations by name."""


def shifted_array(image: Image.Image, name: str) -> np.ndarray:
    """The perturbed image as a uint8 array (for tests and hashing)."""
    return np.asarray(SHIFTS[name](image))
