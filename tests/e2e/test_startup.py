"""``streamlit run`` opens the store and loads the model as the server starts (ui.startup), before any
browser connects, so the day's first call does not wait for them."""

from __future__ import annotations

import time

from tests.e2e.test_browser import start_dashboard
from tests.helpers import xray_like


def test_the_server_loads_the_model_before_the_first_browser_connects(tmp_path):
    data_dir = tmp_path / "data"
    process, _url, _ = start_dashboard(data_dir, PNEUMONIA_MODEL_WARM_UP="1")
    try:
        log, deadline = data_dir / "streamlit.log", time.monotonic() + 120
        while "Warm-up:" not in log.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        text = log.read_text()
        assert "Warm-up: store open, model efficientnet_lite0@" in text, text[-2000:]
        assert (data_dir / "reviews.db").is_file()  # the store was created and migrated by the warm-up
        assert "Traceback" not in text
    finally:
        process.terminate()
        process.wait(timeout=30)


def _refused(events: list[tuple[str, str, int]]) -> list[str]:
    """The server's own addresses (``_stcore``, ``static``) that answered 4xx or 5xx.

    Media is left out: the Predict page replaces the X-ray by its heat map in the same run, and a
    browser that asks for the replaced image a moment late gets Streamlit's 404 for it.
    """
    return [
        address
        for kind, address, status in events
        if kind == "response" and status >= 400 and ("/_stcore/" in address or "/static/" in address)
    ]


def _first_prediction(page, url: str, image, events: list[tuple[str, str, int]]) -> None:
    """Open the Predict page at ``url``, upload ``image`` and wait for its call, recording every request
    (kind, address) and every answer (status) in ``events``."""
    page.on("request", lambda request: events.append(("request", request.url, 0)))
    page.on("response", lambda response: events.append(("response", response.url, response.status)))
    page.goto(f"{url}/predict")
    page.locator("input[type=file]").wait_for(state="attached")
    page.locator("input[type=file]").set_input_files(str(image))
    page.get_by_text("logged as prediction #1").wait_for()


def test_a_first_visit_finds_the_server_at_once_with_the_upload_box_already_fetched(browser_page, tmp_path):
    """Without ui.first_paint the front end pinged /predict/_stcore/health first (a 404, then a retry at
    /), and fetched the upload box's scripts only once the page's first message arrived."""
    image = tmp_path / "x.png"
    xray_like(1, True, 224).save(image)
    process, url, _ = start_dashboard(tmp_path / "data")
    events: list[tuple[str, str, int]] = []
    try:
        _first_prediction(browser_page, url, image, events)
    finally:
        process.terminate()
        process.wait(timeout=30)
    requested = [address for kind, address, _ in events if kind == "request"]
    assert not [address for address in requested if "/predict/_stcore/" in address]
    assert not _refused(events)
    first_ping = next(i for i, address in enumerate(requested) if address.endswith("/_stcore/health"))
    uploader = next(i for i, address in enumerate(requested) if "/static/js/FileUploader." in address)
    assert uploader < first_ping  # preloaded with the page, before the websocket opens


def test_the_dashboard_works_under_a_base_url_path(browser_page, tmp_path):
    """The hints name the server's address from server.baseUrlPath (a proxy that serves it under a path)."""
    image = tmp_path / "x.png"
    xray_like(2, False, 224).save(image)
    process, url, _ = start_dashboard(tmp_path / "data", STREAMLIT_SERVER_BASE_URL_PATH="pneumonia")
    events: list[tuple[str, str, int]] = []
    try:
        _first_prediction(browser_page, f"{url}/pneumonia", image, events)
        browser_page.get_by_text("Grad-CAM for").wait_for()
        browser_page.wait_for_function(  # the heat map's media, served under the base path, is drawn
            "[...document.querySelectorAll('[data-testid=stImage] img')].some("
            "image => image.src.includes('/pneumonia/media/') && image.complete && image.naturalWidth > 0)"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    requested = [address for kind, address, _ in events if kind == "request"]
    assert f"{url}/pneumonia/_stcore/health" in requested
    assert any(address.startswith(f"{url}/pneumonia/static/js/FileUploader.") for address in requested)
    assert not _refused(events)
