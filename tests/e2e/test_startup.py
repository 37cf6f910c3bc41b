"""``streamlit run`` opens the store and loads the model as the server starts (ui.startup), before any
browser connects, so the day's first call does not wait for them."""

from __future__ import annotations

import time

from tests.e2e.test_browser import start_dashboard


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
