"""DICOM reading with pydicom: header checks first, then pixel data only, windowed for display and the model.

Everything that can be judged from the header is judged before any pixel is
decoded: that it is a projection radiograph of the chest (Modality CR/DX/DR,
BodyPartExamined, ViewPosition), a single grayscale frame, and small enough
(Rows x Columns x frames x bits). A deflated file is inflated under a byte
limit, so a tiny upload cannot expand into gigabytes. Compressed transfer
syntaxes (JPEG, JPEG-LS, JPEG 2000, RLE) decode through pydicom's plugin
decoders (the ``pylibjpeg`` packages). Identifying tags are never returned.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

DICOM_MAGIC_OFFSET = 128
DEFLATED_SYNTAX = b"1.2.840.10008.1.2.1.99"
RADIOGRAPH_MODALITIES = {"CR", "DX", "DR"}
"""Projection radiography; CT, MR, NM, US, ... are refused."""
CHEST_BODY_PARTS = {"CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_TO_PELVIS", "PORT CHEST", "CHEST PA", "CHEST AP"}
LATERAL_VIEWS = {"LL", "RL", "LLD", "RLD", "LATERAL", "LAT", "LLO", "RLO"}
MAX_PIXELS = 40_000_000
"""Largest frame accepted (Rows x Columns), checked from the header."""
MAX_PIXEL_BYTES = 256 * 2**20
"""Largest decoded pixel data accepted (Rows x Columns x frames x bytes per sample)."""
MAX_INFLATED_BYTES = 96 * 2**20
"""Largest size a deflated DICOM may inflate to (the largest frame accepted, 40 M pixels at 16 bits, fits)."""
INFLATE_PIECE = 64 * 1024
"""Bytes inflated at a time while the inflated size is counted."""
WORKING_PIXELS = 16_000_000
"""Frames above this are subsampled before the float LUT arithmetic (memory stays bounded)."""


def is_dicom(data: bytes) -> bool:
    """True for a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def _inflated_size(deflated: bytes, limit: int) -> int:
    """How many bytes ``deflated`` (raw deflate) inflates to, counting at most ``limit + 1``.

    Streams in small pieces and keeps none of the output, so a bomb costs a few kilobytes of memory and
    stops as soon as it passes ``limit``.

    Raises:
        zlib.error: corrupt deflated data.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    for offset in range(0, len(deflated), INFLATE_PIECE):
        pending = deflated[offset : offset + INFLATE_PIECE]
        while pending and total <= limit and not inflater.eof:
            total += len(inflater.decompress(pending, INFLATE_PIECE))
            pending = inflater.unconsumed_tail
        if total > limit or inflater.eof:  # bytes after the end of the stream (padding) are not data
            break
    return total


def _inflate(data: bytes, label: str) -> bytes:
    """A deflated DICOM rewritten as Explicit VR Little Endian, so pydicom never inflates it itself.

    The size is checked while streaming (:func:`_inflated_size`) before anything is kept; a file past
    :data:`MAX_INFLATED_BYTES` is refused. Any other file is returned unchanged.

    Raises:
        ValueError: one line: too large once inflated, corrupt, or without a file meta group length.
    """
    if DEFLATED_SYNTAX not in data[:4096]:
        return data
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian

    start = DICOM_MAGIC_OFFSET + 4
    if data[start : start + 6] != b"\x02\x00\x00\x00UL":
        raise ValueError(f"{label}: deflated DICOM without a file meta group length is not supported")
    meta_end = start + 12 + struct.unpack("<I", data[start + 8 : start + 12])[0]
    body = data[meta_end:]
    try:
        too_large = _inflated_size(body, MAX_INFLATED_BYTES) > MAX_INFLATED_BYTES
    except zlib.error:
        raise ValueError(f"{label}: unreadable DICOM (corrupt deflated data)") from None
    if too_large:
        raise ValueError(f"{label}: DICOM inflates past {MAX_INFLATED_BYTES // 2**20} MiB; refused")
    try:
        inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body)
        meta = FileMetaDataset(read_dataset(io.BytesIO(data[start:meta_end]), False, True))
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        header = DicomBytesIO()
        write_file_meta_info(header, meta, enforce_standard=True)
    except zlib.error:
        raise ValueError(f"{label}: unreadable DICOM (corrupt deflated data)") from None
    except Exception as error:  # pydicom raises many types for a malformed meta group
        raise ValueError(f"{label}: unreadable DICOM file meta ({type(error).__name__})") from None
    return data[:start] + header.getvalue() + inflated


def _text(dataset: Any, keyword: str) -> str:
    value = dataset.get(keyword, "")
    return str(value).strip().upper() if value is not None else ""


def header_problem(dataset: Any) -> str | None:
    """Why a DICOM header is refused before decoding its pixels, or ``None``."""
    modality = _text(dataset, "Modality")
    if modality not in RADIOGRAPH_MODALITIES:
        return f"DICOM modality {modality or 'missing'!r} is not a projection radiograph (CR, DX or DR)"
    body_part = _text(dataset, "BodyPartExamined")
    if body_part and body_part not in CHEST_BODY_PARTS:
        return f"DICOM body part {body_part[:20]!r} is not the chest"
    view = _text(dataset, "ViewPosition")
    if view in LATERAL_VIEWS:
        return f"DICOM view {view!r} is lateral; the model reads frontal (PA/AP) views"
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        bits = int(dataset.get("BitsAllocated", 16) or 16)
    except (AttributeError, TypeError, ValueError):
        return "DICOM file has no image (no pixel data or size tags)"
    if frames > 1:
        return f"multi-frame DICOM ({frames} frames) is not supported; export one frame"
    if samples != 1:
        return "colour DICOM is not a radiograph"
    if rows < 1 or columns < 1:
        return "DICOM image has no pixels"
    if rows * columns > MAX_PIXELS:
        return f"image too large ({columns}x{rows} pixels, limit {MAX_PIXELS:,})"
    if rows * columns * frames * samples * max(bits, 8) // 8 > MAX_PIXEL_BYTES:
        return f"image too large ({columns}x{rows} pixels at {bits} bits)"
    return None


def _reason(error: BaseException) -> str:
    """The first line of an error's message (its type when empty), short."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:80] or type(error).__name__


def _read(data: bytes, label: str, pixels: bool) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except Exception as error:  # pydicom raises many types for a malformed file
        raise ValueError(f"{label}: unreadable DICOM ({type(error).__name__})") from None


def dicom_to_image(data: bytes, label: str = "upload") -> Image.Image:
    """Decode a single-frame chest radiograph DICOM to an 8-bit grayscale image.

    Applies the modality LUT, then the VOI LUT or window (centre/width), and
    inverts MONOCHROME1 so bone is bright as in every other X-ray.

    Raises:
        ValueError: refused from the header, unreadable, or undecodable (one line, no pixel decoded when
            the header already says no).
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    data = _inflate(data, label)
    header = _read(data, label, pixels=False)
    try:  # values are parsed on first access: an unknown VR ('WS', 'ES') or bad value raises here
        problem = header_problem(header)
    except Exception as error:
        raise ValueError(f"{label}: unreadable DICOM header ({_reason(error)})") from None
    if problem:
        raise ValueError(f"{label}: {problem}")
    dataset = _read(data, label, pixels=True)
    try:
        if "PixelData" not in dataset:
            raise ValueError(f"{label}: DICOM file has no image (no pixel data)")
        pixels = dataset.pixel_array
        step = int(np.ceil(np.sqrt(pixels.size / WORKING_PIXELS))) if pixels.size > WORKING_PIXELS else 1
        if step > 1:  # plenty for a 224-px model and a screen; keeps the float arithmetic small
            pixels = np.ascontiguousarray(pixels[::step, ::step])
        values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset).astype(np.float32, copy=False)
        if values.ndim != 2:
            raise ValueError(f"{label}: DICOM pixels are not one grayscale frame")
        monochrome1 = _text(dataset, "PhotometricInterpretation") == "MONOCHROME1"
    except ValueError as error:
        if str(error).startswith(f"{label}: "):
            raise
        raise ValueError(f"{label}: cannot decode DICOM pixels ({_reason(error)})") from None
    except Exception as error:  # plugin decoders, value parsing and LUT code raise many types for bad data
        raise ValueError(f"{label}: cannot decode DICOM pixels ({_reason(error)})") from None
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if monochrome1:
        scaled = 1.0 - scaled
    return Image.fromarray((scaled * 255).round().astype(np.uint8), mode="L")


def stored_bytes(data: bytes, image: Image.Image) -> bytes:
    """The bytes to keep for an upload: DICOM as PNG pixels only, so no identifying tag is stored; others as given."""
    if not is_dicom(data):
        return data
    buffer = io.BytesIO()
    image.convert("L").save(buffer, format="PNG")
    return buffer.getvalue()
