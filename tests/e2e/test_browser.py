"""End to end: the real Streamlit server, a real headless Chromium (Debian's), a real SQLite file.

Set SAVE_SCREENSHOTS=1 to refresh the README's screenshots in docs/screenshots/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def start_dashboard(data_dir: Path, poll_s: float = 0.2, **settings: str) -> tuple[subprocess.Popen, str, float]:
    """Start ``streamlit run`` on a free loopback port, asking for its health every ``poll_s`` seconds;
    returns (process, url, seconds to healthy)."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}  # SQLite unless asked
    env.update({"PNEUMONIA_DATA_DIR": str(data_dir), **settings})
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
    base_path = settings.get("STREAMLIT_SERVER_BASE_URL_PATH", "").strip("/")
    health = f"{url}/{base_path}/_stcore/health" if base_path else f"{url}/_stcore/health"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes through a proxy
    while time.monotonic() - started < 240:
        try:
            with direct.open(health, timeout=1) as response:
                if response.status == 200:
                    return process, url, time.monotonic() - started
        except OSError:
            time.sleep(poll_s)
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text()[-2000:])
    process.kill()
    raise RuntimeError(f"streamlit did not become healthy in 240 s: {log_path.read_text()[-2000:]}")


@contextlib.contextmanager
def seeded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: Callable[[Path], Any], **settings: str):
    """A dashboard over a store that ``seed(data_dir)`` filled first (its images go where the server looks);
    yields ``(url, data_dir, what seed returned)``. Skips without Debian's chromium."""
    skip_unless_available(
        Path(CHROMIUM).exists(), "Debian's chromium", "enable with 'apt-get install chromium' (.ci/run does)"
    )
    data_dir = tmp_path / "data"
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(data_dir))
    monkeypatch.delenv("IMAGE_STORE_DIR", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    seeded = seed(data_dir)
    process, url, _ = start_dashboard(data_dir, **settings)
    try:
        yield url, data_dir, seeded
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture()
def dashboard(tmp_path):
    process, url, _ = start_dashboard(
        tmp_path / "data", PNEUMONIA_ADJUDICATORS="Dr Lead", PNEUMONIA_TYPED_ADJUDICATORS="1"
    )
    yield url, tmp_path / "data"
    process.terminate()
    process.wait(timeout=30)


def _wait_for_rows(database: Path, table: str, count: int, timeout: float = 120.0) -> None:
    """Wait until ``table`` holds ``count`` rows. A message on the page is not enough: while a slow rerun
    runs, Streamlit keeps the previous run's elements (an earlier "saved" line) on screen."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(database) as connection:
            rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if rows >= count or time.monotonic() > deadline:
            assert rows == count, f"{table}: {rows} rows, expected {count}"
            return
        time.sleep(0.25)


def _wait_idle(page) -> None:
    """Wait until no script run is in progress (Streamlit's running indicator is gone), so a key press
    lands on the current page, not on a stale one that is about to be replaced."""
    page.wait_for_timeout(300)  # a run triggered just now shows its indicator first
    page.locator('[data-testid="stStatusWidgetRunningIcon"]').wait_for(state="detached", timeout=120_000)


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = REPO_ROOT / "docs" / "screenshots" if os.environ.get("SAVE_SCREENSHOTS") else tmp_path
    path = folder / f"{name}.png"
    page.wait_for_timeout(1500)  # let plotly finish drawing
    page.screenshot(path=str(path), full_page=True)
    return path


def test_upload_blind_read_review_adjudicate_in_a_real_browser(browser_page, dashboard, tmp_path):
    from playwright.sync_api import expect

    url, data_dir = dashboard
    page = browser_page
    image = tmp_path / "child_xray.png"
    xray_like(7, True, 224).save(image)

    page.goto(f"{url}/predict")
    page.locator("input[type=file]").set_input_files(str(image))
    page.get_by_text("Prediction:").wait_for()
    page.get_by_text("logged as prediction #1").wait_for()
    page.get_by_text("Grad-CAM for").wait_for()  # heat maps fill in after every call is shown
    assert _screenshot(page, "predict", tmp_path).stat().st_size > 10_000

    # First reader: blind first read, then the AI is revealed and they disagree with it.
    page.get_by_role("link", name="Review prediction #1").click()
    page.get_by_text("Case #1: model says").wait_for()
    page.get_by_label("Reviewer name").fill("Dr E2E")
    page.get_by_label("Reviewer name").press("Enter")
    page.wait_for_timeout(2000)  # the rerun that stores the name
    page.get_by_text("Blind first read").click()
    page.get_by_text("Case #1: your read first").wait_for()
    expect(page.get_by_text("model says")).to_have_count(0)
    expect(page.get_by_text("PNEUMONIA:")).to_have_count(0)
    page.locator(".js-plotly-plot").first.wait_for()  # the large viewer
    _screenshot(page, "blind_read", tmp_path)
    page.get_by_text("Case #1: your read first").click()  # focus the page, not a text box
    _wait_idle(page)
    page.keyboard.press("1")  # keyboard shortcut: my call is NORMAL
    page.get_by_text("Your unaided call: NORMAL").wait_for()
    case_title = page.get_by_text("Case #1: model says").inner_text()
    model_call = case_title.rsplit(" ", 1)[-1]
    other = "NORMAL" if model_call == "PNEUMONIA" else "PNEUMONIA"
    notes = page.get_by_label("Notes")
    notes.click()
    notes.press_sequentially("<b>opacity</b> and 1 2 n")  # letters that are shortcuts elsewhere type as text
    page.wait_for_timeout(500)
    expect(notes).to_have_value("<b>opacity</b> and 1 2 n")
    _screenshot(page, "review", tmp_path)
    page.get_by_role("button", name=f"Disagree: {other}").click()
    page.get_by_text("Review of case #1 saved.").wait_for()
    _wait_for_rows(data_dir / "reviews.db", "reviews", 1)

    # Second reader, not blind: agrees with the model, so the readers disagree.
    page.get_by_text("Blind first read").click()
    page.get_by_label("Reviewer name").fill("Dr Two")
    page.get_by_label("Reviewer name").press("Enter")
    page.wait_for_timeout(2000)  # the rerun that stores the name
    page.get_by_text("Case #1: model says").click()
    expect(page.get_by_role("button", name=f"Agree: {model_call}")).to_be_visible()
    _wait_idle(page)
    page.keyboard.press("a")  # keyboard shortcut: agree
    page.get_by_text("Review of case #1 saved.").wait_for()
    _wait_for_rows(data_dir / "reviews.db", "reviews", 2)

    # The adjudicator settles it.
    page.goto(f"{url}/adjudication")
    page.get_by_text("Image #1: model says").wait_for()
    page.get_by_label("Reviewer name").fill("Dr Lead")
    page.get_by_label("Reviewer name").press("Enter")
    page.wait_for_timeout(2000)
    page.get_by_role("radiogroup").get_by_text(other, exact=True).click()
    expect(page.get_by_role("radio", name=other)).to_be_checked()
    page.get_by_label("Reason (required)").fill("lateral view decides")
    _screenshot(page, "adjudication", tmp_path)
    page.get_by_role("button", name="Record final label").click()
    page.get_by_text(f"Final label of image #1 recorded: {other}.").wait_for()

    with sqlite3.connect(data_dir / "reviews.db") as connection:
        blind = connection.execute("SELECT id, reviewer, label FROM blind_reads").fetchall()
        reviews = connection.execute(
            "SELECT reviewer, agrees, corrected_label, notes, blind_read_id FROM reviews ORDER BY id"
        ).fetchall()
        adjudications = connection.execute("SELECT adjudicator, label, reason FROM adjudications").fetchall()
        images = connection.execute("SELECT file_name, storage_path FROM images").fetchall()
    assert [b[1:] for b in blind] == [("Dr E2E", "NORMAL")]
    assert reviews == [
        ("Dr E2E", 0, other, "<b>opacity</b> and 1 2 n", blind[0][0]),
        ("Dr Two", 1, None, "", None),
    ]
    assert adjudications == [("Dr Lead", other, "lateral view decides")]
    assert images[0][0] == "child_xray.png" and (data_dir / "images" / images[0][1]).is_file()

    page.goto(f"{url}/feedback")
    page.get_by_text("Disagreements").first.wait_for()
    page.get_by_text("log verified up to entry 6 of 6").wait_for()
    _screenshot(page, "feedback", tmp_path)
    page.goto(f"{url}/metrics")
    page.get_by_text("Operating point", exact=True).wait_for()
    page.locator(".js-plotly-plot").nth(1).wait_for()  # confusion matrix and ROC curve drawn
    _screenshot(page, "metrics", tmp_path)
