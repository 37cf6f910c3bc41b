"""Dashboard benchmark in a real headless Chromium: start-ups to the first prediction, then round trips.

    python benchmarks/dashboard.py [--rounds 5] [--start-only]

Three start-ups (median printed) with the browser open before ``streamlit run`` and launched once the
server answers; then, on one server, ``--rounds`` uploads, fresh tabs, the viewer, 32 X-rays at once
and the idle server.

Prints figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, start_dashboard  # noqa: E402
from tests.helpers import xray_like  # noqa: E402


def _viewer_controls(browser: object, url: str) -> None:
    """The Review page's viewer: each control's rerun, from the click until the page is idle again."""
    from tests.e2e.test_browser import _wait_idle

    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page.set_default_timeout(180_000)
    page.goto(f"{url}/review?prediction=1")
    page.get_by_text("Case #1: model says").wait_for()
    _wait_idle(page)
    timings: dict[str, list[float]] = {}
    for _ in range(3):
        for name in ("side by side", "overlay", "off"):
            begin = time.monotonic()
            page.get_by_text(name, exact=True).click()
            _wait_idle(page)
            timings.setdefault(f"heat map {name}", []).append(time.monotonic() - begin - 0.3)  # _wait_idle's pause
    print(
        "viewer controls (click -> page idle, median of 3; the first 'side by side' computes the heat map): "
        + ", ".join(f"{k} {statistics.median(v):.2f} s (first {v[0]:.2f} s)" for k, v in timings.items())
    )
    page.close()


def _many_at_once(browser: object, url: str, work: Path, first_id: int, count: int = 32) -> None:
    """32 X-rays uploaded at once: when every call is shown, and when every heat map is."""
    paths = []
    for i in range(count):
        path = work / f"batch_{i}.png"
        xray_like(500 + i, i % 2 == 0, 224).save(path)
        paths.append(str(path))
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(600_000)
    page.goto(f"{url}/predict")
    page.locator("input[type=file]").wait_for(state="attached")
    begin = time.monotonic()
    page.locator("input[type=file]").set_input_files(paths)
    page.get_by_text(f"logged as prediction #{first_id + count - 1}").wait_for()
    calls = time.monotonic() - begin
    page.wait_for_function(f"document.body.innerText.split('Grad-CAM for').length > {count}")
    maps = time.monotonic() - begin
    print(f"{count} X-rays at once: every call shown after {calls:.1f} s, every heat map after {maps:.1f} s")
    page.close()


def _idle_cpu(pid: int, seconds: float = 20.0) -> float:
    """The server's CPU use while nobody uses it, in % of one core (user + system time from /proc)."""
    import os

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    time.sleep(5)  # let the closed sessions wind down
    before = ticks()
    time.sleep(seconds)
    return 100.0 * (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds


def _start_up(playwright: object, data_dir: Path, image: Path, browser_first: bool) -> dict[str, float]:
    """One start-up, timed from ``streamlit run``: the server healthy, the upload box drawn, the first call
    shown and its heat map, over the store in ``data_dir`` and a browser with an empty cache.

    ``browser_first``: the browser is open with a blank tab before the server starts (a clinician's
    browser); else it is launched once the server answers.
    """

    def open_tab() -> tuple[Any, Any]:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # type: ignore[attr-defined]
        return browser, browser.new_page()

    browser, page = open_tab() if browser_first else (None, None)
    started = time.monotonic()
    process, url, healthy = start_dashboard(data_dir, poll_s=0.05)
    try:
        if browser is None:
            browser, page = open_tab()
        page.set_default_timeout(180_000)
        page.goto(f"{url}/predict")
        page.locator("input[type=file]").wait_for(state="attached")
        drawn = time.monotonic() - started
        page.locator("input[type=file]").set_input_files(str(image))
        uploaded = time.monotonic()
        page.get_by_text(re.compile(r"logged as prediction #\d+")).wait_for()
        first = time.monotonic() - started
        page.get_by_text("Grad-CAM for").wait_for()
        heat_map = time.monotonic() - uploaded
        return {"healthy": healthy, "drawn": drawn, "first": first, "heat map": heat_map}
    finally:
        if browser is not None:
            browser.close()
        process.terminate()
        process.wait(timeout=30)


def _start_ups(playwright: object, work: Path, image: Path, rounds: int = 3) -> None:
    """The first prediction after ``streamlit run``, median of ``rounds``, with the browser open before and
    launched after the server starts, in turn, over one store that holds data (an unmeasured start-up
    creates it first)."""
    data_dir = work / "start-ups"
    _start_up(playwright, data_dir, image, browser_first=True)
    modes = ((True, "browser already open"), (False, "browser launched once the server answers"))
    timings: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(rounds):
        for browser_first, _how in modes:
            timings[browser_first].append(_start_up(playwright, data_dir, image, browser_first))
    for browser_first, how in modes:
        runs = timings[browser_first]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        firsts = ", ".join(f"{run['first']:.2f}" for run in runs)
        print(
            f"start-up, {how} (median of {rounds}): first prediction shown {median['first']:.2f} s after "
            f"`streamlit run` (runs: {firsts}); server healthy at "
            f"{median['healthy']:.2f} s, upload box drawn at {median['drawn']:.2f} s; its heat map "
            f"{median['heat map']:.2f} s after the upload"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--start-only", action="store_true", help="stop after the start-up runs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp())
    images = []
    for i in range(args.rounds + 1):
        path = work / f"xray_{i}.png"
        xray_like(100 + i, i % 2 == 0, 224).save(path)
        images.append(path)
    with sync_playwright() as playwright:
        _start_ups(playwright, work, images[0])
    if args.start_only:
        return
    process, url, _ = start_dashboard(work / "data")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(180_000)
            trips, maps = [], []
            for i, image in enumerate(images, start=1):
                page.goto(f"{url}/predict")
                page.locator("input[type=file]").wait_for(state="attached")
                begin = time.monotonic()
                page.locator("input[type=file]").set_input_files(str(image))
                page.get_by_text(f"logged as prediction #{i}").wait_for()
                trips.append(time.monotonic() - begin)
                page.get_by_text("Grad-CAM for").wait_for()
                maps.append(time.monotonic() - begin)
            print(
                f"prediction round trip (upload -> call shown): median {statistics.median(trips):.2f} s, "
                f"max {max(trips):.2f} s; heat map shown: median {statistics.median(maps):.2f} s, "
                f"max {max(maps):.2f} s over {len(trips)} uploads"
            )
            draws = []
            for _ in range(3):  # a fresh tab on the running server: the first page drawn
                fresh = browser.new_page()
                begin = time.monotonic()
                fresh.goto(f"{url}/")
                fresh.get_by_role("heading", name="Model performance on held-out patients").wait_for()
                draws.append(time.monotonic() - begin)
                fresh.close()
            print(
                f"first page drawn after the browser opens it: median {statistics.median(draws):.2f} s "
                f"(first visit {draws[0]:.2f} s)"
            )
            _viewer_controls(browser, url)
            _many_at_once(browser, url, work, first_id=len(images) + 1)
            browser.close()
        print(f"idle server: {_idle_cpu(process.pid):.1f} % of one core over 20 s (no page open)")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
