"""Nothing a reader needs is cut off: every page and state at three window sizes, in a real headless Chromium.

An element is cut when its text ends in an ellipsis or its content is wider than its box
(``scrollWidth > clientWidth``): metrics, buttons, labels, headings and table headers. The
screenshots checked are saved under the test's temporary folder (``SAVE_SCREENSHOTS=1``: docs/screenshots/layout).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from db import repository
from db.engine import init_db, make_engine, session_scope
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, _wait_idle, seeded_server
from tests.helpers import REPO_ROOT, xray_like
from ui.common import NAVIGATION

VIEWPORTS = [(1024, 768), (1400, 1000), (1920, 1080)]

CUT_ELEMENTS = """() => {
  const selector = [
    'button', 'label', 'h1', 'h2', 'h3', 'th',
    '[data-testid="stMetricValue"]', '[data-testid="stMetricValue"] *',
    '[data-testid="stMetricLabel"]', '[data-testid="stMetricLabel"] *',
    '[data-testid="stWidgetLabel"] *', '[data-testid="stPageLink"] *', '[data-testid="stTab"] *',
  ].join(',');
  const cut = [];
  for (const element of document.querySelectorAll(selector)) {
    if (!element.offsetParent || !element.clientWidth) continue;  // not shown
    const text = (element.innerText || '').trim();
    if (!text) continue;
    if (element.scrollWidth > element.clientWidth + 1 || text.endsWith('\u2026')) {
      cut.push(`${element.tagName.toLowerCase()}: ${text.slice(0, 80)}`);
    }
  }
  return [...new Set(cut)];
}"""


def _seed(data_dir: Path) -> None:
    """Two cases in the store: one reviewed twice with opposite calls (adjudication), one not yet reviewed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = init_db(make_engine(f"sqlite:///{data_dir / 'reviews.db'}"))
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, "e" * 64, "best_model.pth", "efficientnet_lite0")
        for seed, p in ((3, 0.91), (4, 0.12)):
            buffer = io.BytesIO()
            xray_like(seed, p > 0.5, 320).save(buffer, "PNG")
            image = repository.store_image(session, buffer.getvalue(), f"person{seed}_bacteria_{seed}.png", None)
            label = "PNEUMONIA" if p >= 0.5 else "NORMAL"
            repository.log_prediction(
                session, image=image, model=model, p_pneumonia=p, threshold=0.5, predicted_label=label
            )
        session.flush()
        repository.add_review(session, 1, "Dr Reader One", True, notes="consolidation right lower lobe")
        repository.add_review(session, 1, "Dr Reader Two", False, "NORMAL", "low", "looks clear to me")
    engine.dispose()


@pytest.fixture()
def seeded_dashboard(tmp_path, monkeypatch):
    settings = {"PNEUMONIA_ADJUDICATORS": "Dr Lead", "PNEUMONIA_TYPED_ADJUDICATORS": "1"}
    with seeded_server(tmp_path, monkeypatch, _seed, **settings) as (url, _, _):
        yield url


def _name(page, name: str) -> None:
    box = page.get_by_label("Reviewer name")
    box.fill(name)
    box.press("Enter")
    page.wait_for_timeout(1500)
    _wait_idle(page)


def _check(page, state: str, size: tuple[int, int], folder: Path, found: dict[str, list[str]]) -> None:
    _wait_idle(page)
    page.wait_for_timeout(1200)  # let plotly and the fonts settle
    page.screenshot(path=str(folder / f"{state}_{size[0]}x{size[1]}.png"), full_page=True)
    cut = page.evaluate(CUT_ELEMENTS)
    if cut:
        found[f"{state} at {size[0]}x{size[1]}"] = cut


def test_no_metric_button_label_or_header_is_cut_at_three_window_sizes(seeded_dashboard, tmp_path):
    from playwright.sync_api import sync_playwright

    url = seeded_dashboard
    folder = REPO_ROOT / "docs" / "screenshots" / "layout" if os.environ.get("SAVE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    upload = tmp_path / "upload.png"
    xray_like(9, True, 224).save(upload)
    found: dict[str, list[str]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for size in VIEWPORTS:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.set_default_timeout(180_000)
            page.goto(f"{url}/")
            page.get_by_role("heading", name="Model performance on held-out patients").wait_for()
            page.get_by_role("heading", name="Model versions").wait_for()
            _check(page, "metrics", size, folder, found)

            page.goto(f"{url}/predict")
            page.locator("input[type=file]").set_input_files(str(upload))
            page.get_by_text("Grad-CAM for").wait_for()
            _check(page, "predict", size, folder, found)

            page.goto(f"{url}/review?prediction=2")
            page.get_by_text("Case #2: model says").wait_for()
            _name(page, f"Dr Layout {size[0]}")
            page.get_by_text("Blind first read").click()
            page.get_by_text("Case #2: your read first").wait_for()
            _check(page, "review_blind", size, folder, found)
            page.get_by_role("button", name=re.compile(r"^NORMAL")).click()  # its name carries the shortcut
            page.get_by_text("Your unaided call: NORMAL").wait_for()
            _check(page, "review_revealed", size, folder, found)

            page.goto(f"{url}/adjudication")
            page.get_by_text("Image #1: model says").wait_for()
            _name(page, "Dr Lead")
            page.get_by_text("Record final label").wait_for()
            _check(page, "adjudication", size, folder, found)

            page.goto(f"{url}/feedback")
            page.get_by_role("heading", name="Disagreements").wait_for()
            _check(page, "feedback", size, folder, found)
            page.close()
        browser.close()
    assert not found, "cut off: " + "; ".join(f"{where}: {', '.join(cut)}" for where, cut in found.items())
    assert len(list(folder.glob("*_*x*.png"))) == 6 * len(VIEWPORTS)  # every state checked was saved


def test_every_page_opens_at_its_own_address(seeded_dashboard):
    """``/metrics`` (the sidebar's link, a bookmark) showed "Page not found" while Metrics lived at ``/``."""
    from playwright.sync_api import sync_playwright

    url = seeded_dashboard
    titles = {
        "metrics": "Model performance on held-out patients",
        "predict": "Predict",
        "review": "Review",
        "adjudication": "Adjudication",
        "feedback": "Feedback & export",
        "reader_study": "Reader study",
        "worklist": "Worklist",
    }
    assert set(titles) == {entry.url_path for entry in NAVIGATION}  # every page of the one list
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        for path, title in (("", titles["metrics"]), *titles.items()):
            page.goto(f"{url}/{path}")
            page.get_by_role("heading", name=title, exact=True).wait_for()
            _wait_idle(page)
            assert "Page not found" not in page.inner_text("body"), path
            assert page.url == f"{url}/{path or 'metrics'}"
        browser.close()
