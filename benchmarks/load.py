"""Load test in real headless Chromium: N browser sessions at once upload X-rays and record a review.

    python benchmarks/load.py [--sessions 8] [--images 5] [--blind]

Starts the real server with its default settings (heat map on), opens one browser context per session (each
its own Streamlit session), and has every session upload its images at the same moment on the Predict page,
then review its first prediction. Prints throughput, median and worst latency (upload -> call shown, upload
-> heat map shown, review click -> saved), errors, whether the server stayed up, and the rows stored against
the rows expected. Nothing is asserted here; ``tests/e2e/test_load.py`` runs it small and asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, start_dashboard  # noqa: E402
from tests.helpers import xray_like  # noqa: E402

POLL_SECONDS = 0.1


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the load test."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="browser sessions at once")
    parser.add_argument("--images", type=int, default=5, help="X-rays each session uploads")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a session may take")
    parser.add_argument(
        "--blind", action="store_true", help="serve with blind first read on (each review starts with a blind call)"
    )
    return parser


@dataclass
class SessionResult:
    """What one browser session saw."""

    calls: list[float] = field(default_factory=list)
    """Seconds from the upload to each call shown."""
    heat_maps: float | None = None
    """Seconds from the upload to the last heat map shown."""
    review: float | None = None
    prediction_ids: list[int] = field(default_factory=list)
    reviewed_id: int | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class LoadReport:
    """The whole run's figures."""

    sessions: int
    images: int
    seconds: float
    results: list[SessionResult]
    server_alive: bool
    stored_predictions: int
    stored_reviews: int
    acknowledged_missing: list[str]

    @property
    def errors(self) -> list[str]:
        """Every error any session saw."""
        return [error for result in self.results for error in result.errors]

    def lines(self) -> list[str]:
        """The printed summary."""
        calls = [c for r in self.results for c in r.calls]
        maps = [r.heat_maps for r in self.results if r.heat_maps is not None]
        reviews = [r.review for r in self.results if r.review is not None]

        def spread(values: list[float]) -> str:
            return f"median {statistics.median(values):.2f} s, worst {max(values):.2f} s" if values else "none"

        expected = self.sessions * self.images
        return [
            f"{self.sessions} sessions x {self.images} X-rays, heat map on: {self.seconds:.1f} s in all, "
            f"{len(calls) / self.seconds:.2f} predictions/s",
            f"upload -> call shown: {spread(calls)} ({len(calls)} calls)",
            f"upload -> last heat map shown: {spread(maps)}",
            f"review click -> saved: {spread(reviews)}",
            f"errors: {len(self.errors)}" + "".join(f"\n  {e}" for e in self.errors[:10]),
            f"server up at the end: {'yes' if self.server_alive else 'NO'}",
            f"rows stored: {self.stored_predictions} predictions (expected {expected}), "
            f"{self.stored_reviews} reviews (expected {self.sessions}); "
            f"acknowledged but missing: {len(self.acknowledged_missing)}",
        ]


async def _count(page, text: str) -> int:
    return await page.get_by_text(text).count()


async def _session(
    browser, url: str, index: int, images: list[Path], timeout: float, alive: Callable[[], bool]
) -> SessionResult:
    result = SessionResult()
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(timeout * 1000)
    deadline = time.monotonic() + timeout
    try:
        await page.goto(f"{url}/predict")
        await page.locator("input[type=file]").wait_for(state="attached")
        begin = time.monotonic()
        await page.locator("input[type=file]").set_input_files([str(p) for p in images])
        while len(result.calls) < len(images) or result.heat_maps is None:
            if time.monotonic() > deadline or not alive():
                why = "timed out" if alive() else "the server died"
                result.errors.append(f"session {index}: {why} with {len(result.calls)} call(s) shown")
                return result
            shown = await _count(page, "logged as prediction #")
            result.calls += [time.monotonic() - begin] * (shown - len(result.calls))
            if await page.locator('[data-testid="stException"]').count():
                result.errors.append(f"session {index}: a traceback on the Predict page")
                return result
            if await _count(page, "Could not use this file."):
                result.errors.append(f"session {index}: an upload was refused")
                return result
            if shown >= len(images) and await _count(page, "Grad-CAM for") >= len(images):
                result.heat_maps = time.monotonic() - begin
            await asyncio.sleep(POLL_SECONDS)
        links = await page.get_by_role("link", name=re.compile(r"Review prediction #\d+")).all_inner_texts()
        result.prediction_ids = sorted(int(re.search(r"#(\d+)", text).group(1)) for text in links)  # type: ignore[union-attr]
        case = result.prediction_ids[0]
        await page.goto(f"{url}/review?prediction={case}")
        await page.get_by_label("Reviewer name").fill(f"Load reader {index}")
        await page.get_by_label("Reviewer name").press("Enter")
        await page.wait_for_timeout(1500)  # the rerun that stores the name
        agree = page.get_by_role("button", name=re.compile(r"^Agree: "))
        blind_call = page.get_by_role("button", name=re.compile(r"^NORMAL"))  # its name may carry the shortcut
        await agree.or_(blind_call).first.wait_for()
        if await blind_call.count():  # blind first read: the reviewer's own call before the model's
            await blind_call.first.click()
            await page.get_by_text("Your unaided call: NORMAL").wait_for()
        begin = time.monotonic()
        await agree.click()
        await page.get_by_text(f"Review of case #{case} saved.").wait_for()
        result.review = time.monotonic() - begin
        result.reviewed_id = case
    except Exception as error:  # a browser-side failure is this session's error, not the run's end
        result.errors.append(f"session {index}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
    finally:
        await context.close()
    return result


async def _run(
    url: str, args: argparse.Namespace, images: list[list[Path]], alive: Callable[[], bool]
) -> tuple[list[SessionResult], float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        begin = time.monotonic()
        results = await asyncio.gather(
            *(_session(browser, url, i, images[i], args.timeout, alive) for i in range(args.sessions))
        )
        seconds = time.monotonic() - begin
        await browser.close()
    return list(results), seconds


def _missing(database: Path, results: list[SessionResult]) -> tuple[int, int, list[str]]:
    with sqlite3.connect(database) as connection:
        predictions = {row[0] for row in connection.execute("SELECT id FROM predictions")}
        reviews = {row[0] for row in connection.execute("SELECT prediction_id FROM reviews")}
    missing = [f"prediction {p}" for r in results for p in r.prediction_ids if p not in predictions]
    missing += [f"review of {r.reviewed_id}" for r in results if r.reviewed_id and r.reviewed_id not in reviews]
    return len(predictions), len(reviews), missing


def main(args: argparse.Namespace) -> LoadReport:
    """Run the load test; prints and returns its figures."""
    work = Path(tempfile.mkdtemp(prefix="load-"))
    images = []
    for session in range(args.sessions):  # every image distinct: no two sessions share a hash
        paths = []
        for k in range(args.images):
            path = work / f"s{session}_x{k}.png"
            xray_like(1000 * session + k, (session + k) % 2 == 0, 256).save(path)
            paths.append(path)
        images.append(paths)
    settings = {"PNEUMONIA_BLIND_READ": "1"} if args.blind else {}  # else the server default
    process, url, _ = start_dashboard(work / "data", **settings)
    try:
        results, seconds = asyncio.run(_run(url, args, images, lambda: process.poll() is None))
        alive = process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=60)
    stored, reviewed, missing = _missing(work / "data" / "reviews.db", results)
    report = LoadReport(args.sessions, args.images, seconds, results, alive, stored, reviewed, missing)
    print("\n".join(report.lines()))
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
