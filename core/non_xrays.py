"""Grey images that are not chest X-rays but pass the input checks: the out-of-domain detector's far test set.

Photographs (scikit-learn's two sample photographs, and scikit-image's sample images when that
package is installed), text pages and an invoice drawn with Pillow, and textures (noise, smooth
noise, stripes, checkerboards, gradients, bricks). All are grey, large and contrasty, so
:func:`core.input_checks.xray_problem` lets them through: only the detector can catch them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIDE = 320

_WORDS = [
    "invoice",
    "total",
    "amount",
    "due",
    "payment",
    "reference",
    "customer",
    "number",
    "date",
    "quantity",
    "description",
    "unit",
    "price",
    "tax",
    "subtotal",
    "account",
    "order",
    "delivery",
    "address",
    "terms",
    "conditions",
    "signature",
    "page",
    "report",
    "summary",
]


def _grey(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).convert("RGB")


def _text_page(rng: np.random.Generator, table: bool) -> Image.Image:
    page = Image.new("L", (SIDE, int(SIDE * 1.3)), 245)
    draw = ImageDraw.Draw(page)
    y = 12
    while y < page.height - 16:
        words = " ".join(rng.choice(_WORDS, size=int(rng.integers(3, 8))))
        draw.text((14, y), words, fill=int(rng.integers(0, 60)))
        if table:
            draw.line((10, y + 13, SIDE - 10, y + 13), fill=120)
            draw.text((SIDE - 70, y), f"{rng.uniform(1, 999):8.2f}", fill=20)
        y += 16
    return page.convert("RGB")


def _photographs() -> dict[str, Image.Image]:
    from sklearn.datasets import load_sample_images

    photos = {}
    for index, array in enumerate(load_sample_images().images):
        photos[f"photograph {index + 1}"] = Image.fromarray(array).convert("L").convert("RGB")
    try:
        from skimage import data
    except ImportError:
        return photos
    for name in ("camera", "astronaut", "coffee", "chelsea", "rocket", "page", "text", "brick", "grass", "gravel"):
        try:
            array = getattr(data, name)()
        except Exception:  # sample files that need a download are skipped offline
            continue
        photos[f"scikit-image {name}"] = Image.fromarray(np.asarray(array)).convert("L").convert("RGB")
    return photos


def _textures(rng: np.random.Generator) -> dict[str, Image.Image]:
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    smooth = Image.fromarray(rng.integers(0, 255, (SIDE, SIDE), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(6))
    smooth_array = np.asarray(smooth, dtype=np.float32)
    smooth_array = (smooth_array - smooth_array.min()) / max(1.0, np.ptp(smooth_array)) * 255
    bricks = np.full((SIDE, SIDE), 150.0)
    bricks[::20, :] = 60
    for row in range(0, SIDE, 20):
        offset = 0 if (row // 20) % 2 else 20
        bricks[row : row + 20, offset::40] = 60
    return {
        "noise": _grey(rng.normal(128, 50, (SIDE, SIDE))),
        "smooth noise": _grey(smooth_array),
        "stripes": _grey(128 + 100 * np.sin(2 * np.pi * 12 * x)),
        "checkerboard": _grey(((np.floor(x * 8) + np.floor(y * 8)) % 2) * 200 + 30),
        "gradient": _grey(255 * x),
        "radial gradient": _grey(255 * np.hypot(x - 0.5, y - 0.5) * 1.4),
        "bricks": _grey(bricks + rng.normal(0, 10, (SIDE, SIDE))),
        "circles": _grey(128 + 100 * np.sin(40 * np.hypot(x - 0.5, y - 0.5))),
    }


def non_xray_images(seed: int = 0) -> dict[str, Image.Image]:
    """Named grey RGB images that are not chest X-rays (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    images = _photographs()
    images["text page"] = _text_page(rng, table=False)
    images["invoice"] = _text_page(rng, table=True)
    images.update(_textures(rng))
    return images
