"""Safe image decoding (PNG, JPEG, DICOM, ...): every failure becomes one clear ``ImageLoadError``.

Uploads and command-line paths both come through here, so corrupt files,
text renamed ``.png``, truncated JPEGs, decompression bombs and odd pixel
formats (16-bit grayscale, RGBA, palette) are handled in one place.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.dicom import dicom_to_image, is_dicom

MAX_PIXELS = 40_000_000
"""Largest image accepted (about 6,300 x 6,300); bigger files are refused."""

MAX_BYTES = 100 * 1024 * 1024
"""Largest file accepted, before decoding."""


class ImageLoadError(ValueError):
    """An input that cannot be used as an X-ray image; the message is one line.

    Control characters in the message (a file name with ``\\n`` or ``\\r``, ANSI escapes) are written as
    escapes, so an error stays one line on the page, in the CLI and in logs.
    """

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, rescaling high bit depths."""
    if image.mode in ("I;16", "I;16B", "I;16L"):
        # PIL's convert("L") clips values above 255; rescale the real range with a 64 Ki-entry
        # lookup table instead (no float copy of a large image).
        array = np.asarray(image)
        low, high = int(array.min()), int(array.max())
        ramp = (np.arange(65536, dtype=np.float32) - low) * (255.0 / max(high - low, 1))
        lut = np.clip(np.rint(ramp), 0, 255).astype(np.uint8)
        image = Image.fromarray(lut[array.astype(np.uint16, copy=False)], mode="L")
    elif image.mode in ("I", "F"):
        values = np.nan_to_num(np.array(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        bottom, top = float(values.min()), float(values.max())
        values -= bottom
        values *= 255.0 / (top - bottom) if top > bottom else 0.0
        image = Image.fromarray(np.rint(values).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def printable(text: str) -> str:
    """``text`` with control characters (ANSI escapes, NUL, newlines) written as escapes, safe for a terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def read_image_file(path: str | Path, label: str | None = None) -> bytes:
    """A file's bytes, refusing what is missing, not a regular file, unreadable or over :data:`MAX_BYTES`.

    Reads at most ``MAX_BYTES + 1`` bytes whatever the file claims (``/proc`` files report size 0).

    Raises:
        ImageLoadError: one line, never an ``OSError``.
    """
    label = label or str(path)
    try:
        target = Path(path)
        if not target.exists():
            raise ImageLoadError(f"{label}: file not found")
        if not target.is_file():
            raise ImageLoadError(f"{label}: not a file")
        if target.stat().st_size > MAX_BYTES:
            raise ImageLoadError(f"{label}: file larger than {MAX_BYTES // 2**20} MiB")
        with open(target, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise ImageLoadError(f"{label}: cannot be read ({error.strerror or type(error).__name__})") from None
    if len(data) > MAX_BYTES:
        raise ImageLoadError(f"{label}: file larger than {MAX_BYTES // 2**20} MiB")
    return data


def load_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Decode a file path or raw bytes into an RGB PIL image.

    Args:
        source: a filesystem path, or the bytes of an uploaded file.
        name: how to call the input in error messages (defaults to the path).

    Returns:
        A fully decoded RGB image (EXIF orientation applied).

    Raises:
        ImageLoadError: with a one-line reason for any unusable input.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "upload")
    data = source if isinstance(source, bytes) else read_image_file(source, label)
    if not data:
        raise ImageLoadError(f"{label}: empty file")
    if len(data) > MAX_BYTES:
        raise ImageLoadError(f"{label}: file larger than {MAX_BYTES // 2**20} MiB")
    if is_dicom(data):
        try:
            image = dicom_to_image(data, label)
        except ValueError as error:
            raise ImageLoadError(str(error)) from None
        except Exception as error:  # a decoder failure dicom_to_image did not foresee: still one line
            raise ImageLoadError(f"{label}: unreadable DICOM ({type(error).__name__})") from None
        if image.size[0] * image.size[1] > MAX_PIXELS:
            raise ImageLoadError(f"{label}: image too large ({image.size[0]}x{image.size[1]} pixels)")
        return image.convert("RGB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageLoadError(f"{label}: image too large ({width}x{height} pixels, limit {MAX_PIXELS:,})")
            if getattr(image, "n_frames", 1) > 1 and image.format not in ("PNG",):
                image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"{label}: image too large (decompression bomb refused)") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label}: not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageLoadError(f"{label}: corrupt or truncated image ({reason})") from None
    if min(image.size) < 1:
        raise ImageLoadError(f"{label}: image has no pixels")
    try:
        return _to_rgb(image)
    except (OSError, ValueError) as error:  # odd modes and broken palettes surface only when converting
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageLoadError(f"{label}: unsupported pixel format ({reason})") from None


def apply_window(image: Image.Image, level: float, width: float) -> Image.Image:
    """Window / level (brightness and contrast) of a grayscale view, as on a radiology workstation.

    Args:
        image: any PIL image; shown as 8-bit grayscale.
        level: the grey value (0-255) mapped to mid-grey.
        width: the range of grey values spread over black to white (1-255); narrower means more contrast.

    Returns:
        An ``L`` image; pixels below ``level - width/2`` are black, above ``level + width/2`` white.
    """
    import numpy as np

    width = max(1.0, float(width))
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    scaled = (grey - (float(level) - width / 2)) / width
    return Image.fromarray((np.clip(scaled, 0.0, 1.0) * 255).round().astype(np.uint8), mode="L")
