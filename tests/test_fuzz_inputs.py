"""Fuzz: 1,000+ generated hostile files through ``predict_image`` and ``predict_and_log``.

Each call either answers or raises a documented error (``ImageLoadError`` and its
``NotAnXrayError``; the store's ``ValidationError``); none hangs (a per-call
alarm), memory stays bounded, and a refused input leaves nothing in the
database or the image store. Seeded, so a failure reproduces.
"""

from __future__ import annotations

import io
import resource
import signal
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from core.images import ImageLoadError
from core.inference import Predictor, predict_image
from service import predictions, store
from tests.helpers import make_dicom, xray_like

FORMATS = ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "TGA", "PCX", "ICO", "IM", "SGI"]
MODES = ["1", "L", "P", "LA", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]
NAMES = [
    "plain.png",
    "../../etc/passwd.png",
    "![x](https://example.invalid/a).png",
    "=HYPERLINK(1).png",
    "ctl\x00\x1b[31m.png",
    "ünïcødé-名前.png",
    "a" * 300 + ".png",
    "",
    ".",
    "..",
    "CON.png",
    "x\\y.png",
]
CALL_SECONDS = 20
"""A call taking longer than this is a hang (far above any real decode on this machine)."""


def _png_header_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def _encode(image: Image.Image, fmt: str) -> bytes | None:
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # this format cannot hold this mode
    return buffer.getvalue()


def hostile_files(seed: int = 0):
    """Yield ``(kind, name, bytes)``: at least 1,000 files."""
    rng = np.random.default_rng(seed)
    base = xray_like(1, True, 96)
    valid = []
    for fmt in FORMATS:
        for mode in MODES:
            try:
                image = (
                    base.convert(mode)
                    if mode != "I;16"
                    else Image.fromarray((np.asarray(base, dtype=np.uint16) * 257).astype(np.uint16))
                )
            except (ValueError, OSError):
                continue
            data = _encode(image, fmt)
            if data:
                valid.append((f"{fmt}-{mode}", data))
    valid.append(("DICOM", make_dicom(np.asarray(xray_like(2, False, 96), dtype=np.uint16) * 16)))
    valid.append(("DICOM-CT", make_dicom(np.asarray(xray_like(3, False, 96), dtype=np.uint16), modality="CT")))
    for kind, data in valid:
        yield f"valid {kind}", str(rng.choice(NAMES)), data
    for i in range(450):  # truncated
        kind, data = valid[i % len(valid)]
        yield f"truncated {kind}", str(rng.choice(NAMES)), data[: int(rng.integers(0, len(data)))]
    for i in range(450):  # bit-flipped
        kind, data = valid[i % len(valid)]
        flipped = bytearray(data)
        for position in rng.integers(0, len(flipped), int(rng.integers(1, 20))):
            flipped[position] ^= 1 << int(rng.integers(0, 8))
        yield f"bit-flipped {kind}", str(rng.choice(NAMES)), bytes(flipped)
    for i in range(100):  # random bytes, with and without a real magic number in front
        body = rng.bytes(int(rng.integers(0, 5000)))
        prefix = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\0" * 128 + b"DICM", b"GIF89a", b"BM"][i % 6]
        yield "random", str(rng.choice(NAMES)), prefix + body
    for width, height in [(100000, 100000), (1, 10**8), (70000, 70000), (0, 0), (65535, 1)]:
        yield "png header bomb", "bomb.png", _png_header_bomb(width, height)
    for side in (16000, 60000):
        from pydicom import dcmread
        from pydicom.filebase import DicomBytesIO

        ds = dcmread(DicomBytesIO(valid[-2][1]))
        ds.Rows = ds.Columns = side
        buffer = io.BytesIO()
        ds.save_as(buffer)
        yield "dicom header bomb", "bomb.dcm", buffer.getvalue()


UNKNOWN_VRS = [b"WS", b"ES", b"ZZ", b"\x00\x00", b"  "]
"""Value representations no DICOM edition defines: pydicom raises on first access to such an element."""


def dicom_vr_and_deflate_cases(seed: int = 1):
    """Yield ``(kind, name, bytes)``: DICOMs with unknown VRs in header tags, deflate bombs, corrupt deflate."""
    rng = np.random.default_rng(seed)
    plain = make_dicom(np.asarray(xray_like(5, True, 96), dtype=np.uint16) * 16)
    tags = [b"\x28\x00\x02\x00US", b"\x28\x00\x10\x00US", b"\x28\x00\x11\x00US", b"\x08\x00\x60\x00CS"]
    for tag in tags:
        for vr in UNKNOWN_VRS:
            raw = bytearray(plain)
            at = raw.find(tag)
            raw[at + 4 : at + 6] = vr
            yield "unknown VR", "vr\r\n.dcm", bytes(raw)
    deflated = make_dicom(np.asarray(xray_like(6, False, 96), dtype=np.uint16) * 16, deflated=True)
    meta_end = 144 + struct.unpack("<I", deflated[140:144])[0]
    yield "valid deflated DICOM", "deflated.dcm", deflated
    for inflated_mib in (97, 300):
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = b"".join(packer.compress(b"\0" * 2**20) for _ in range(inflated_mib)) + packer.flush()
        yield "deflate bomb", "bomb.dcm", deflated[:meta_end] + body
    for _ in range(20):
        body = bytearray(deflated[meta_end:])
        for position in rng.integers(0, len(body), int(rng.integers(1, 10))):
            body[position] ^= 1 << int(rng.integers(0, 8))
        yield "bit-flipped deflate", "flipped.dcm", deflated[:meta_end] + bytes(body)
        yield "truncated deflate", "cut.dcm", deflated[: int(rng.integers(meta_end, len(deflated)))]


def _alarm(_signum, _frame):
    raise TimeoutError(f"a call took over {CALL_SECONDS} s")


def _state(engine, data_dir):
    with engine.connect() as connection:
        counts = tuple(
            connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("images", "predictions")
        )
    image_dir = data_dir / "images"
    files = sorted(str(p) for p in image_dir.rglob("*") if p.is_file()) if image_dir.exists() else []
    return counts, files


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # decoders warn about the damage they survive; that is the point
def test_fuzz_hostile_files(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("IMAGE_STORE_DIR", raising=False)
    engine = store.open_store()
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    start_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    previous = signal.signal(signal.SIGALRM, _alarm)
    outcomes: dict[str, int] = {}
    total = 0
    try:
        for kind, name, data in [*hostile_files(), *dicom_vr_and_deflate_cases()]:
            total += 1
            signal.alarm(CALL_SECONDS)
            try:
                predict_image(data, checkpoint=tiny_checkpoint, device="cpu")
                outcomes["predicted"] = outcomes.get("predicted", 0) + 1
            except ImageLoadError:
                outcomes["refused"] = outcomes.get("refused", 0) + 1
            before = _state(engine, tmp_path)
            try:
                predictions.predict_and_log(engine, predictor, data, name)
            except (ImageLoadError, store.ValidationError) as error:
                assert "\n" not in str(error), (kind, name)
                assert _state(engine, tmp_path) == before, f"{kind} {name!r} left something behind"
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_peak
    assert total >= 1150
    assert grown < 2**20, f"peak memory grew by {grown / 2**10:.0f} MiB"
    assert outcomes.get("predicted", 0) > 10 and outcomes.get("refused", 0) > 300  # both paths exercised
    assert all(not p.endswith(".part") for p in _state(engine, tmp_path)[1])
