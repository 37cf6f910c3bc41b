"""End to end: the real Streamlit server, a real headless Chromium (Debian's), a real SQLite file.

Set SAVE_SCREENSHOTS=1 to refresh the README's screenshots in docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, free_port, skip_unless_available, xray_like

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]


def start_dashboard(data_dir: Path) -> tuple[subprocess.Popen, str, float]:
    """Start ``streamlit run`` on a free loopback port; returns (process, url, seconds to healthy)."""
    port = free_port()
    env = {**os.environ, "PNEUMONIA_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    started = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "streamlit.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the server keeps writing to it after this function returns
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,  # a file, not a pipe: an undrained pipe would block a chatty server
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes through a proxy
    for _ in range(1200):
        try:
            with direct.open(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return process, url, time.monotonic() - started
        except OSError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text()[-2000:])
    process.kill()
    raise RuntimeError(f"streamlit did not become healthy in 240 s: {log_path.read_text()[-2000:]}")


@pytest.fixture()
def dashboard(tmp_path):
    process, url, _ = start_dashboard(tmp_path / "data")
    yield url, tmp_path / "data"
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture()
def browser_page():
    skip_unless_available(
        Path(CHROMIUM).exists(), "Debian's chromium", "enable with 'apt-get install chromium' (.ci/run does)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        yield page
        browser.close()


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = REPO_ROOT / "docs" / "screenshots" if os.environ.get("SAVE_SCREENSHOTS") else tmp_path
    path = folder / f"{name}.png"
    page.wait_for_timeout(1500)  # let plotly finish drawing
    page.screenshot(path=str(path), full_page=True)
    return path


def test_upload_predict_review_in_a_real_browser(browser_page, dashboard, tmp_path):
    from playwright.sync_api import expect

    url, data_dir = dashboard
    page = browser_page
    image = tmp_path / "child_xray.png"
    xray_like(7, True, 224).save(image)

    page.goto(f"{url}/predict")
    page.locator("input[type=file]").set_input_files(str(image))
    page.get_by_text("Prediction:").wait_for()
    page.get_by_text("logged as prediction #1").wait_for()
    assert _screenshot(page, "predict", tmp_path).stat().st_size > 10_000

    page.get_by_role("link", name="Review prediction #1").click()
    page.get_by_text("Case #1: model says").wait_for()
    page.get_by_label("Reviewer name").fill("Dr E2E")
    page.get_by_label("Reviewer name").press("Enter")
    page.wait_for_timeout(2000)  # the rerun that stores the name
    page.get_by_text("Disagree", exact=True).click()
    expect(page.get_by_role("radio", name="Disagree")).to_be_checked()
    page.get_by_label("Notes").fill("<b>opacity</b> right lower lobe")
    expect(page.get_by_label("Notes")).to_have_value("<b>opacity</b> right lower lobe")
    _screenshot(page, "review", tmp_path)
    expect(page.get_by_label("Reviewer name")).to_have_value("Dr E2E")
    page.get_by_role("button", name="Submit review").click()
    page.get_by_text("Review of case #1 saved.").wait_for()

    with sqlite3.connect(data_dir / "reviews.db") as connection:
        predictions = connection.execute("SELECT id, predicted_label, channel FROM predictions").fetchall()
        reviews = connection.execute(
            "SELECT prediction_id, reviewer, agrees, corrected_label, notes FROM reviews"
        ).fetchall()
        images = connection.execute("SELECT file_name, storage_path FROM images").fetchall()
    assert len(predictions) == 1 and predictions[0][2] == "dashboard"
    predicted = predictions[0][1]
    expected_label = "NORMAL" if predicted == "PNEUMONIA" else "PNEUMONIA"
    assert reviews == [(1, "Dr E2E", 0, expected_label, "<b>opacity</b> right lower lobe")]
    assert images[0][0] == "child_xray.png" and (data_dir / "images" / images[0][1]).is_file()

    page.goto(f"{url}/feedback")
    page.get_by_text("Disagreements").first.wait_for()
    _screenshot(page, "feedback", tmp_path)
    page.goto(f"{url}/metrics")
    page.get_by_text("Operating point", exact=True).wait_for()
    page.locator(".js-plotly-plot").nth(1).wait_for()  # confusion matrix and ROC curve drawn
    _screenshot(page, "metrics", tmp_path)
