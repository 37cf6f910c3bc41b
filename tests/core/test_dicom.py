"""DICOM files written with pydicom, read through the same path as every upload."""

import io
import tracemalloc

import numpy as np
import pytest

from core.dicom import is_dicom
from core.images import ImageLoadError, load_image
from tests.helpers import make_dicom, xray_like


def gradient(size=128) -> np.ndarray:
    return np.tile(np.linspace(0, 4000, size), (size, 1)).astype(np.uint16)


def test_monochrome2_keeps_bright_bone():
    image = np.asarray(load_image(make_dicom(gradient())))
    assert is_dicom(make_dicom(gradient())) and image.shape == (128, 128, 3)
    assert image[0, 0, 0] < 10 and image[0, -1, 0] > 245


def test_monochrome1_is_inverted():
    image = np.asarray(load_image(make_dicom(gradient(), "MONOCHROME1")))
    assert image[0, 0, 0] > 245 and image[0, -1, 0] < 10


def test_window_is_applied():
    image = np.asarray(load_image(make_dicom(gradient(), window=(1000, 500))))[..., 0]
    # Values below 750 are black and above 1250 white: most of the row saturates.
    assert (image[0] == 0).mean() > 0.15 and (image[0] == 255).mean() > 0.6


def test_multi_frame_is_refused():
    with pytest.raises(ImageLoadError, match="multi-frame"):
        load_image(make_dicom(gradient(), frames=3))


def test_no_pixels_and_garbage_are_refused():
    with pytest.raises(ImageLoadError, match="no pixel data"):
        load_image(make_dicom(gradient(), with_pixels=False))
    corrupt = make_dicom(gradient())[:400]
    with pytest.raises(ImageLoadError) as info:
        load_image(corrupt)
    assert "\n" not in str(info.value)


def test_identifying_tags_never_reach_database_or_store(tiny_checkpoint, tmp_path, monkeypatch):
    from core.inference import Predictor
    from db.engine import init_db, make_engine
    from service.predictions import predict_and_log
    from tests.helpers import xray_like

    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pixels = np.asarray(xray_like(3, True, 128), dtype=np.uint16) * 16
    data = make_dicom(pixels, patient="Secretname^Patient")
    engine = init_db(make_engine())
    logged = predict_and_log(engine, Predictor.from_checkpoint(tiny_checkpoint, "cpu"), data, "scan.dcm")
    assert logged.result.label in ("NORMAL", "PNEUMONIA")
    engine.dispose()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"Secretname" not in content and b"ID-12345" not in content, path
    stored = list((tmp_path / "images").rglob("*.png"))
    assert len(stored) == 1 and not list((tmp_path / "images").rglob("*.bin"))


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"modality": "CT"}, "modality 'CT' is not a projection radiograph"),
        ({"modality": "MR"}, "modality 'MR'"),
        ({"modality": ""}, "modality 'missing'"),
        ({"body_part": "ABDOMEN"}, "body part 'ABDOMEN' is not the chest"),
        ({"view": "LL"}, "view 'LL' is lateral"),
    ],
)
def test_header_refusals_name_the_reason(kwargs, reason):
    with pytest.raises(ImageLoadError, match=reason):
        load_image(make_dicom(gradient(), **kwargs))


def test_chest_pa_dx_is_accepted():
    image = load_image(make_dicom(gradient(), modality="DX", body_part="CHEST", view="PA"))
    assert image.size == (128, 128)


def test_header_size_bomb_is_refused_before_decoding():
    import tracemalloc

    from pydicom import dcmread
    from pydicom.filebase import DicomBytesIO

    data = make_dicom(gradient())
    ds = dcmread(DicomBytesIO(data))
    ds.Rows = ds.Columns = 16000  # the header claims 256 Mpixels; the pixel data is tiny
    buffer = io.BytesIO()
    ds.save_as(buffer)
    tracemalloc.start()
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(buffer.getvalue())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20


def test_deflated_dicom_is_inflated_under_a_limit(monkeypatch):
    import core.dicom

    bomb = make_dicom(np.zeros((1000, 1000), np.uint16), deflated=True)
    assert len(bomb) < 20_000  # zeros deflate to almost nothing
    assert load_image(bomb).size == (1000, 1000)  # under the limit it reads normally
    monkeypatch.setattr(core.dicom, "MAX_INFLATED_BYTES", 2**20)  # 1 MiB: the 2 MB of pixels exceed it
    with pytest.raises(ImageLoadError, match="inflates past 1 MiB"):
        load_image(bomb)


def _bundled_dicoms():
    from pathlib import Path

    import pydicom

    return sorted((Path(pydicom.__file__).parent / "data" / "test_files").rglob("*.dcm"))


def test_every_bundled_pydicom_file_is_predicted_or_refused_in_one_line():
    from pydicom import dcmread

    predicted = []
    for path in _bundled_dicoms():
        data = path.read_bytes()
        try:
            load_image(data, name=path.name)
        except ImageLoadError as error:
            assert "\n" not in str(error) and str(error).startswith(path.name)
            continue
        try:
            modality = str(dcmread(path, stop_before_pixels=True, force=True).get("Modality", ""))
        except Exception:
            modality = ""
        predicted.append((path.name, modality))
    assert not [p for p in predicted if p[1] in {"CT", "MR", "NM", "US", "PT", "RTDOSE"}], predicted


def test_compressed_radiographs_decode_through_the_plugins():
    """JPEG lossless, JPEG-LS and JPEG 2000 pixel data decode (pylibjpeg plugins), checked on bundled files."""
    from pydicom import dcmread

    for name in ("MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "JPGExtended.dcm", "MR_small_RLE.dcm"):
        path = next(p for p in _bundled_dicoms() if p.name == name)
        assert dcmread(path).pixel_array.size > 0, name


def _with_vr(data: bytes, tag: bytes, vr: bytes) -> bytes:
    """The file with one element's explicit VR replaced (e.g. an unknown 'WS')."""
    raw = bytearray(data)
    at = raw.find(tag)
    assert at > 0
    raw[at + 4 : at + 6] = vr
    return bytes(raw)


@pytest.mark.parametrize("vr", [b"WS", b"ES", b"ZZ"])
@pytest.mark.parametrize("tag", [b"\x28\x00\x02\x00US", b"\x28\x00\x10\x00US", b"\x08\x00\x60\x00CS"])
def test_unknown_value_representation_is_a_one_line_refusal(tag, vr):
    plain = make_dicom(np.asarray(xray_like(2, False, 96), dtype=np.uint16) * 16)
    with pytest.raises(ImageLoadError) as refused:
        load_image(_with_vr(plain, tag, vr), "scan\r\nname.dcm")
    message = str(refused.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith("scan\\r\\nname.dcm: ")


def _deflated_bomb(inflated_bytes: int) -> bytes:
    import struct
    import zlib

    head = make_dicom(np.zeros((8, 8), np.uint16), deflated=True)
    meta_end = 144 + struct.unpack("<I", head[140:144])[0]
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = b"".join(packer.compress(b"\0" * 2**20) for _ in range(inflated_bytes // 2**20)) + packer.flush()
    return head[:meta_end] + body


def test_deflate_bomb_is_refused_while_streaming_in_bounded_memory_and_time():
    import time

    bomb = _deflated_bomb(600 * 2**20)  # about 600 KB that inflate to 600 MiB
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ImageLoadError, match="inflates past 96 MiB"):
        load_image(bomb)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB held while refusing"
    assert seconds < 5  # stops at the cap, not after inflating 600 MiB (typically well under a second)


def test_deflated_dicom_reads_exactly_as_its_plain_twin_and_corrupt_deflate_is_one_line():
    pixels = np.asarray(xray_like(4, True, 96), dtype=np.uint16) * 16
    deflated, plain = make_dicom(pixels, deflated=True), make_dicom(pixels)
    assert np.array_equal(np.asarray(load_image(deflated)), np.asarray(load_image(plain)))
    corrupt = deflated[:-40] + bytes(40)
    with pytest.raises(ImageLoadError) as refused:
        load_image(corrupt, "bad.dcm")
    assert str(refused.value).startswith("bad.dcm: ") and "\n" not in str(refused.value)
