"""IMAGE_STORE=dicomweb: the PACS as the shared image store, read back by any replica (real Orthanc)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from db.models import Image, Prediction
from db.remote_images import uids
from pacs.client import PacsClient
from service import reviews, store
from service.predictions import predict_and_log
from tests.helpers import real_xrays


@pytest.fixture()
def shared_store(pacs_url, data_dir, monkeypatch):
    monkeypatch.setenv("IMAGE_STORE", "dicomweb")
    monkeypatch.setenv("DICOMWEB_URL", pacs_url)
    return pacs_url


def _upload(path):
    return path.read_bytes()


def test_an_upload_lands_in_the_pacs_and_another_replica_reads_it(shared_store, engine, monkeypatch, tmp_path):
    from core.inference import Predictor

    predictor = Predictor.from_checkpoint(None, "cpu")
    source = real_xrays(1)[0]
    logged = predict_and_log(engine, predictor, _upload(source), source.name)
    with engine.connect() as connection:
        sha = connection.execute(select(Image.sha256)).scalar_one()
    study, series, sop = uids(sha)
    found = PacsClient(shared_store).search_instances(study, "OT")
    assert [f["00080018"]["Value"][0] for f in found] == [sop]  # in the PACS, under UIDs its hash gives
    monkeypatch.setenv("IMAGE_STORE_DIR", str(tmp_path / "replica-b-cache"))  # a replica with an empty folder
    case = reviews.load_case(engine, logged.prediction_id)
    assert case.image_path.read_bytes() == source.read_bytes()
    again = predict_and_log(engine, predictor, _upload(source), "same again.jpeg")  # stored once, in both places
    assert again.image_id == logged.image_id and len(PacsClient(shared_store).search_instances(study, "OT")) == 1


def test_an_unreachable_image_store_saves_nothing_and_says_so_in_one_line(data_dir, engine, monkeypatch):
    from core.inference import Predictor
    from pacs.orthanc import free_port

    monkeypatch.setenv("IMAGE_STORE", "dicomweb")
    monkeypatch.setenv("DICOMWEB_URL", f"http://127.0.0.1:{free_port()}/dicom-web")
    source = real_xrays(1)[0]
    with pytest.raises(store.StoreUnavailable) as error:
        predict_and_log(engine, Predictor.from_checkpoint(None, "cpu"), source.read_bytes(), source.name)
    assert "\n" not in str(error.value) and "image store (PACS)" in str(error.value)
    with engine.connect() as connection:
        assert connection.execute(select(Prediction.id)).first() is None
        assert connection.execute(select(Image.id)).first() is None
    assert not [p for p in (data_dir / "images").rglob("*") if p.is_file() and not p.name.endswith(".part")]


def test_the_wrapped_image_carries_pixels_and_the_exact_file():
    from PIL import Image as PILImage

    from db.remote_images import PRIVATE_CREATOR, PRIVATE_GROUP, wrap

    buffer = io.BytesIO()
    PILImage.new("L", (40, 30), 90).save(buffer, "PNG")
    dataset = wrap(buffer.getvalue(), "ab" * 32)
    assert (dataset.Rows, dataset.Columns) == (30, 40) and dataset.Modality == "OT"
    assert bytes(dataset.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[0x10].value) == buffer.getvalue()
    assert dataset.SOPInstanceUID == uids("ab" * 32)[2] != uids("cd" * 32)[2]
