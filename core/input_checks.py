"""Is this plausibly a frontal chest X-ray? Refuse, with a reason, what clearly is not.

Deliberately simple, explainable rules that catch the common mistakes (a colour
photograph, a blank or constant frame, a thumbnail) without refusing real
radiographs; ``benchmarks/input_checks.py`` measures both error rates.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.images import ImageLoadError, load_image

MIN_SIDE = 64
"""Smallest accepted width or height in pixels."""
MIN_CONTRAST = 8.0
"""Smallest accepted standard deviation of gray levels (0-255)."""
COLOUR_CHROMA = 40
"""A pixel whose max-min channel difference exceeds this is 'coloured'."""
MAX_COLOUR_FRACTION = 0.05
"""More coloured pixels than this fraction means a colour picture."""


class NotAnXrayError(ImageLoadError):
    """The image decoded but is not plausibly a chest X-ray."""


def xray_problem(image: Image.Image) -> str | None:
    """The reason an image is refused, or ``None`` when it passes.

    Args:
        image: an RGB PIL image.
    """
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        return f"image is too small ({width}x{height}); an X-ray needs at least {MIN_SIDE} px per side"
    # Work on a bounded thumbnail: the statistics do not need full resolution.
    small = image.convert("RGB").copy()
    small.thumbnail((256, 256))
    rgb = np.asarray(small, dtype=np.int16)
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    if (chroma > COLOUR_CHROMA).mean() > MAX_COLOUR_FRACTION:
        return "image is in colour (a photograph?); chest X-rays are grayscale"
    if float(rgb.mean(axis=2).std()) < MIN_CONTRAST:
        return "image is blank or nearly constant"
    return None


def check_xray(image: Image.Image, name: str = "image") -> Image.Image:
    """Return ``image`` when it is plausibly a chest X-ray.

    Raises:
        NotAnXrayError: refused, with the reason.
    """
    problem = xray_problem(image)
    if problem:
        raise NotAnXrayError(f"{name}: {problem}")
    return image


def load_xray(source: str | bytes, name: str | None = None) -> Image.Image:
    """Decode an input and check it is plausibly a chest X-ray.

    Raises:
        ImageLoadError: unreadable input.
        NotAnXrayError: readable, but refused with the reason.
    """
    image = load_image(source, name=name)
    return check_xray(image, name or (str(source) if not isinstance(source, bytes) else "upload"))
