"""DICOM reading with pydicom: pixel data only, windowed for display and the model.

Identifying tags are never returned, so nothing downstream can store or log them.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

DICOM_MAGIC_OFFSET = 128


def is_dicom(data: bytes) -> bool:
    """True for a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def dicom_to_image(data: bytes, label: str = "upload") -> Image.Image:
    """Decode a single-frame DICOM to an 8-bit grayscale image.

    Applies the modality LUT, then the VOI LUT or window (centre/width), and
    inverts MONOCHROME1 so bone is bright as in every other X-ray.

    Raises:
        ValueError: unreadable, multi-frame, colour, or without pixel data (one line).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as error:
        raise ValueError(f"{label}: unreadable DICOM ({type(error).__name__})") from None
    if "PixelData" not in dataset:
        raise ValueError(f"{label}: DICOM file has no image (no pixel data)")
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(f"{label}: multi-frame DICOM ({frames} frames) is not supported; export one frame")
    if int(getattr(dataset, "SamplesPerPixel", 1)) != 1:
        raise ValueError(f"{label}: colour DICOM is not a radiograph")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # compressed transfer syntaxes without a decoder, corrupt data
        raise ValueError(f"{label}: cannot decode DICOM pixels ({str(error).splitlines()[0][:80]})") from None
    values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset).astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if str(getattr(dataset, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        scaled = 1.0 - scaled
    return Image.fromarray((scaled * 255).round().astype(np.uint8), mode="L")
