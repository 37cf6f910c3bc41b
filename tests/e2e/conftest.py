"""Fixtures of the browser tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import skip_unless_available


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
