"""DICOM files written with pydicom, read through the same path as every upload."""

import numpy as np
import pytest

from core.dicom import is_dicom
from core.images import ImageLoadError, load_image
from tests.helpers import make_dicom


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
    from db.actions import predict_and_log
    from db.engine import init_db, make_engine
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
