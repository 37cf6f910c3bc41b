import io

import pytest
from PIL import Image
from sqlalchemy import text

from db.engine import make_engine
from tests.helpers import xray_like
from tests.pages.conftest import open_page


def _png(seed=1, size=224):
    buffer = io.BytesIO()
    xray_like(seed, True, size).save(buffer, "PNG")
    return buffer.getvalue()


def _count(table):
    with make_engine().connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def test_upload_predicts_logs_once_and_links_to_review(app_env):
    at = open_page("predict")
    at.file_uploader[0].upload("chest.png", _png(), "image/png").run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader if s.value.startswith("Prediction:")][0].split(": ")[1] in (
        "NORMAL",
        "PNEUMONIA",
    )
    p = float(next(m.value for m in at.metric if m.label == "P(PNEUMONIA)"))
    called = [s.value for s in at.subheader if s.value.startswith("Prediction:")][0].split(": ")[1]
    decision = next(m.value for m in at.markdown if m.value.startswith("P(PNEUMONIA)"))
    assert decision.startswith(f"P(PNEUMONIA) {p:.3f} ") and decision.endswith(f": {called}")  # numbers and call agree
    threshold = float(decision.split("the threshold ")[1].split(":")[0])
    assert (p >= threshold) == (called == "PNEUMONIA")
    assert any("logged as prediction #1" in c.value for c in at.caption)
    assert len(at.image) >= 1
    at.slider[0].set_value(0.8).run()  # a rerun must not log the same upload again
    assert _count("predictions") == 1 and _count("images") == 1


def test_many_uploads_and_bad_ones(app_env):
    at = open_page("predict")
    uploader = at.file_uploader[0]
    uploader.upload("a.png", _png(1), "image/png")
    uploader.upload("empty.png", b"", "image/png")
    uploader.upload("text.png", b"hello, not an image", "image/png")
    buffer = io.BytesIO()
    xray_like(2, False, 224).convert("RGB").save(buffer, "JPEG")
    uploader.upload("b.jpg", buffer.getvalue()[:400], "image/jpeg")  # truncated
    huge = io.BytesIO()
    Image.new("1", (20000, 20000)).save(huge, "PNG")
    uploader.upload("huge.png", huge.getvalue(), "image/png")
    uploader.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Could not use this file."] * 4
    details = [t.value for t in at.text]
    assert any(d.startswith("huge.png: image too large") for d in details)
    assert _count("predictions") == 1


def _shown_label(at) -> str:
    return next(s.value for s in at.subheader if s.value.startswith("Prediction:")).split(": ")[1]


def test_heatmap_toggle(app_env):
    at = open_page("predict")
    at.file_uploader[0].upload("c.png", _png(3), "image/png").run()
    assert [c for i in at.image for c in i.captions] == ["Grad-CAM for " + _shown_label(at)]
    at.toggle[0].set_value(False).run()
    assert not at.exception
    assert [c for i in at.image for c in i.captions] == [""] and len(at.image) == 1


def test_dicom_upload_and_non_xray_refusal(app_env):
    import numpy as np

    from tests.helpers import make_dicom

    at = open_page("predict")
    pixels = np.asarray(xray_like(4, True, 224), dtype=np.uint16) * 16
    at.file_uploader[0].upload("scan.dcm", make_dicom(pixels), "application/dicom")
    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(photo, "PNG")
    at.file_uploader[0].upload("holiday.png", photo.getvalue(), "image/png").run()
    assert not at.exception
    assert any("logged as prediction #1" in c.value for c in at.caption)
    assert [e.value for e in at.error] == ["Could not use this file."]
    assert "holiday.png: image is in colour (a photograph?); chest X-rays are grayscale" in [t.value for t in at.text]


def test_hostile_file_names_are_shown_as_plain_text(app_env):
    """A name built to be Markdown (an image that fetches from a server, a fake link) is never rendered."""
    at = open_page("predict")
    names = ["![t](https://example.invalid/x).png", "[Session expired - log in](https://example.invalid).png"]
    at.file_uploader[0].upload(names[0], _png(5), "image/png")
    at.file_uploader[0].upload(names[1], b"not an image", "image/png").run()
    assert not at.exception
    shown = [t.value for t in at.text]
    assert names[0] in shown and any(t.endswith("not a recognised image format") for t in shown)
    rendered = [m.value for m in at.markdown] + [e.value for e in at.error] + [c.value for c in at.caption]
    assert not any("example.invalid" in value for value in rendered)
    assert all("example.invalid" not in caption for image in at.image for caption in image.captions)


def test_a_dicom_with_an_unknown_vr_is_one_line_and_the_batch_goes_on(app_env):
    import numpy as np

    from tests.helpers import make_dicom

    raw = bytearray(make_dicom(np.asarray(xray_like(3, False, 224), dtype=np.uint16) * 16))
    at_tag = raw.find(b"\x28\x00\x02\x00US")  # SamplesPerPixel, given a VR no edition defines
    raw[at_tag + 4 : at_tag + 6] = b"WS"
    at = open_page("predict")
    uploader = at.file_uploader[0]
    uploader.upload("odd\nvr.dcm", bytes(raw), "application/dicom")
    uploader.upload("after.png", _png(4), "image/png")
    uploader.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Could not use this file."]
    detail = next(t.value for t in at.text if "unreadable DICOM header" in t.value)
    assert "\n" not in detail and detail.startswith("odd\\nvr.dcm: ")
    assert _count("predictions") == 1  # the PNG after it was still predicted and logged


def test_an_image_outside_the_training_images_is_called_behind_a_warning_and_stored_flagged(app_env):
    from core.non_xrays import non_xray_images

    buffer = io.BytesIO()
    non_xray_images()["text page"].save(buffer, "PNG")
    at = open_page("predict")
    at.file_uploader[0].upload("page.png", buffer.getvalue(), "image/png").run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("Out of domain: outside the images this model was trained on") for w in at.warning)
    assert [s.value for s in at.subheader if s.value.startswith("Prediction:")]  # the call is still shown
    with make_engine().connect() as connection:
        assert connection.execute(text("SELECT out_of_domain FROM predictions")).scalar() in (True, 1)


@pytest.fixture()
def warm_up_loads(app_env, monkeypatch) -> list[str]:
    """Warm-up on, as on a server, in a fresh process state; the names of the threads that load the model."""
    import threading

    from ui import common

    monkeypatch.setenv("PNEUMONIA_MODEL_WARM_UP", "1")
    monkeypatch.setattr(common, "_WARMED", set())
    monkeypatch.setattr(common, "_WARM_UP", [])
    loads: list[str] = []
    real = common._load_predictor

    def spy(path: str):
        loads.append(threading.current_thread().name)
        return real(path)

    monkeypatch.setattr(common, "_load_predictor", spy)
    return loads


def test_the_model_warms_up_once_in_the_background_and_the_page_takes_that_load(warm_up_loads):
    """The first page starts loading the model in force while it draws; the page waits for that load
    instead of starting its own, and later runs never start another."""
    at = open_page("predict")
    assert not at.exception
    at.run()  # a rerun warms nothing up again
    assert warm_up_loads == ["model-warm-up"]


def test_a_first_visit_straight_to_the_page_warms_the_model_up_too(warm_up_loads):
    """Streamlit runs ``pages/predict.py`` without the router on a first visit to ``/predict``: the page
    itself starts the warm-up (before this, only the router did, so such a visit loaded nothing ahead)."""
    from streamlit.testing.v1 import AppTest

    from tests.helpers import REPO_ROOT
    from ui import common

    # AppTest cannot resolve the sidebar's links of a page run alone (the real server can): the page stops
    # there, after page_header has started the warm-up.
    AppTest.from_file(str(REPO_ROOT / "pages" / "predict.py"), default_timeout=180).run()
    assert len(common._WARM_UP) == 1
    path, predictor = common._WARM_UP[0].result(timeout=120)
    assert warm_up_loads == ["model-warm-up"] and path.endswith("best_model.pth") and predictor.backend == "onnxruntime"
