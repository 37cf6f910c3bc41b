"""python -m pacs against a real Orthanc: pull, predict and log once, push an SR and a secondary capture, review SRs."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from pacs.client import PacsClient
from pacs.results import BANNER, sr_findings
from service import reviews
from tests.helpers import real_xrays, run_main
from tests.pacs.conftest import radiograph, xray_pixels


@pytest.fixture()
def store_env(data_dir, monkeypatch, pacs_url):
    monkeypatch.setenv("DICOMWEB_URL", pacs_url)
    return pacs_url


def _load(url, datasets):
    PacsClient(url).store(datasets)


def _upload_rest(url, dataset):
    """Orthanc's own REST upload (for a PACS that refuses STOW-RS)."""
    import io
    import urllib.request

    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    request = urllib.request.Request(
        url.rsplit("/dicom-web", 1)[0] + "/instances", data=buffer.getvalue(), method="POST"
    )
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200


def test_pull_logs_once_pushes_results_and_review_srs(store_env, engine):
    url = store_env
    frontal = [radiograph(xray_pixels(p)) for p in real_xrays(2)]
    lateral = radiograph(xray_pixels(real_xrays(3)[2]), view="LL")
    _load(url, [*frontal, lateral])

    first = run_main("pacs", "pull")
    assert first.returncode == 0, first.stderr
    assert "logged 2 new prediction(s), skipped 0 already logged, refused 1; pushed 2 result(s)" in first.stdout
    assert "refused: " in first.stderr and "lateral" in first.stderr and first.stderr.count("\n") == 1
    again = run_main("pacs", "pull")
    assert "logged 0 new prediction(s), skipped 2 already logged" in again.stdout  # no duplicates

    from db.models import PacsInstance, Prediction

    with engine.connect() as connection:
        logged = {
            sop: (label, p)
            for sop, label, p in connection.execute(
                select(PacsInstance.sop_instance_uid, Prediction.predicted_label, Prediction.p_pneumonia).join(
                    Prediction
                )
            )
        }
    assert set(logged) == {d.SOPInstanceUID for d in frontal}
    client = PacsClient(url)
    for source in frontal:
        srs = client.search_instances(source.StudyInstanceUID, "SR")
        assert len(srs) == 1
        sr = client.retrieve_uid(
            source.StudyInstanceUID, srs[0]["0020000E"]["Value"][0], srs[0]["00080018"]["Value"][0]
        )
        found = sr_findings(sr)
        label, p = logged[source.SOPInstanceUID]
        assert found["referenced"] == [source.SOPInstanceUID]
        assert found["evaluations"]["Pneumonia"] == ("Present" if label == "PNEUMONIA" else "Absent")
        assert found["numbers"]["Calibrated probability of pneumonia"] == pytest.approx(p, abs=1e-6)
        scs = client.search_instances(source.StudyInstanceUID, "OT")
        assert len(scs) == 1
        sc = client.retrieve_uid(
            source.StudyInstanceUID, scs[0]["0020000E"]["Value"][0], scs[0]["00080018"]["Value"][0]
        )
        assert sc.BurnedInAnnotation == "YES" and sc.ImageComments == BANNER
        assert sc.pixel_array.shape[-1] == 3 and sc.StudyInstanceUID == source.StudyInstanceUID

    from service import pacs_store

    first_row = pacs_store.worklist(engine)[0]
    assert [r.label for r in pacs_store.worklist(engine)] == sorted(
        (r.label for r in pacs_store.worklist(engine)), key=lambda x: x != "PNEUMONIA"
    )
    other = "NORMAL" if first_row.label == "PNEUMONIA" else "PNEUMONIA"
    reviews.submit_review(engine, first_row.prediction_id, "Dr Reader", False, other)
    pushed = run_main("pacs", "push-reviews")
    assert pushed.returncode == 0 and "pushed 1 review SR(s)" in pushed.stdout
    assert "pushed 0 review SR(s)" in run_main("pacs", "push-reviews").stdout
    srs = client.search_instances(first_row.study_uid, "SR")
    assert len(srs) == 2
    review = [
        sr_findings(client.retrieve_uid(first_row.study_uid, s["0020000E"]["Value"][0], s["00080018"]["Value"][0]))
        for s in srs
    ]
    decision = next(r for r in review if "Reviewer decision about the AI result" in r["evaluations"])
    assert decision["evaluations"]["Reviewer decision about the AI result"] == "AI result corrected"
    assert decision["evaluations"]["Final label"] == ("Present" if other == "PNEUMONIA" else "Absent")
    first_sr_uid = next(s["00080018"]["Value"][0] for s in srs if s["00080018"]["Value"][0] != "")
    assert decision["referenced"] and decision["referenced"][0] in {s["00080018"]["Value"][0] for s in srs}
    assert first_sr_uid


def test_bad_dicom_in_the_pacs_is_one_line_and_the_rest_is_pulled(store_env, engine):
    url = store_env
    good = radiograph(xray_pixels(real_xrays(1)[0]))
    no_pixels = radiograph(np.zeros((64, 64)))
    del no_pixels.PixelData
    _load(url, [good, no_pixels])
    result = run_main("pacs", "pull", "--no-push")
    assert result.returncode == 0, result.stderr
    assert "logged 1 new prediction(s)" in result.stdout and "refused 1" in result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("refused: ")


def test_an_unreachable_pacs_is_one_line_and_nothing_is_logged(data_dir, monkeypatch, engine):
    from pacs.orthanc import free_port

    monkeypatch.setenv("DICOMWEB_URL", f"http://127.0.0.1:{free_port()}/dicom-web")
    result = run_main("pacs", "pull")
    assert result.returncode == 2 and result.stderr.startswith("error: PACS ") and result.stderr.count("\n") == 1
    with engine.connect() as connection:
        from db.models import Prediction

        assert connection.execute(select(Prediction.id)).first() is None


def test_a_refused_push_loses_nothing_and_is_retried(data_dir, engine, monkeypatch, tmp_path):
    from pacs import orthanc
    from tests.helpers import skip_unless_available

    skip_unless_available(orthanc.available(), "Orthanc with DICOMweb", "apt-get install orthanc orthanc-dicomweb")
    folder = tmp_path / "refusing"
    process, url = orthanc.start(folder, refuse_stow=True)  # this PACS refuses every STOW-RS request
    try:
        monkeypatch.setenv("DICOMWEB_URL", url)
        source = radiograph(xray_pixels(real_xrays(1)[0]))
        _upload_rest(url, source)
        result = run_main("pacs", "pull")
        assert result.returncode == 1 and "logged 1 new prediction(s)" in result.stdout
        assert "error: PACS" in result.stderr and all(len(line) < 400 for line in result.stderr.splitlines())
        assert len(PacsClient(url).search_instances(source.StudyInstanceUID, "SR")) == 0
    finally:
        orthanc.stop(process)
    # The same PACS and storage, restarted without the filter: now it accepts.
    process, url = orthanc.start(folder, int(url.split(":")[2].split("/")[0]))
    try:
        retry = run_main("pacs", "pull")
        assert retry.returncode == 0, retry.stderr
        assert "pushed 1 result(s)" in retry.stdout and "skipped 1" in retry.stdout
        assert len(PacsClient(url).search_instances(source.StudyInstanceUID, "SR")) == 1
    finally:
        orthanc.stop(process)
