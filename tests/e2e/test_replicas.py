"""Two dashboard replicas behind nginx, sharing PostgreSQL and the PACS, driven by concurrent reviewers.

Real parts only: two ``streamlit run`` processes with their own (empty) local folders, Debian's nginx with
the configuration ``python -m deploy.nginx`` writes, a throw-away PostgreSQL server, an Orthanc PACS holding
the images (``IMAGE_STORE=dicomweb``), and headless Chromium with one browser context (one cookie jar, one
reviewer) per reviewer, all reading at once.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text

from db import repository
from db.engine import init_db, make_engine, session_scope
from deploy.nginx import COOKIE, render
from pacs import orthanc
from tests.db.conftest import fresh_postgres_url, postgres_url  # noqa: F401 - the fixtures
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, start_dashboard
from tests.helpers import free_port, skip_unless_available, xray_like

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CASES = 3
REVIEWERS = ("Dr Ana", "Dr Ben", "Dr Cy", "Dr Dee")


@pytest.fixture()
def shared_stores(fresh_postgres_url, tmp_path, monkeypatch):  # noqa: F811 - the fixture imported above
    """A fresh PostgreSQL database and a fresh Orthanc, with CASES predictions whose images live in the PACS."""
    skip_unless_available(orthanc.available(), "Orthanc with DICOMweb", "apt-get install orthanc orthanc-dicomweb")
    skip_unless_available(Path(NGINX).exists(), "Debian's nginx", "apt-get install nginx (.ci/run does)")
    skip_unless_available(Path(CHROMIUM).exists(), "Debian's chromium", "apt-get install chromium (.ci/run does)")
    database_url = fresh_postgres_url
    pacs, dicomweb_url = orthanc.start(tmp_path / "orthanc")
    settings = {"DATABASE_URL": database_url, "IMAGE_STORE": "dicomweb", "DICOMWEB_URL": dicomweb_url}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path / "seeder"))  # the seeding process's own cache
    monkeypatch.delenv("IMAGE_STORE_DIR", raising=False)
    engine = init_db(make_engine(database_url))
    hashes = []
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, "e" * 64, "best_model.pth", "efficientnet_lite0")
        for seed in range(CASES):
            buffer = io.BytesIO()
            xray_like(seed, seed % 2 == 1, 256).save(buffer, "PNG")
            image = repository.store_image(session, buffer.getvalue(), f"case{seed}.png", None)
            repository.log_prediction(  # every call PNEUMONIA, so every reviewer presses the same button
                session,
                image=image,
                model=model,
                p_pneumonia=0.6 + 0.1 * seed,
                threshold=0.5,
                predicted_label="PNEUMONIA",
            )
            hashes.append(image.sha256)
    yield settings, engine, hashes
    engine.dispose()
    orthanc.stop(pacs)


@pytest.fixture()
def replicas(shared_stores, tmp_path):
    """Two replicas (each its own empty local folder) and nginx in front; yields the proxy's and replicas' URLs."""
    settings, engine, hashes = shared_stores
    started = [start_dashboard(tmp_path / f"replica{i}", **settings) for i in range(2)]
    addresses = [url.removeprefix("http://") for _, url, _ in started]
    listen = f"127.0.0.1:{free_port()}"
    runtime = tmp_path / "nginx"
    runtime.mkdir()
    config = runtime / "nginx.conf"
    config.write_text(render(addresses, listen, str(runtime), daemon=False))
    proxy = subprocess.Popen(
        [NGINX, "-c", str(config), "-p", str(runtime), "-e", str(runtime / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(100):
        try:
            with direct.open(f"http://{listen}/_stcore/health", timeout=2):
                break
        except OSError:
            time.sleep(0.1)
    yield f"http://{listen}", [url for _, url, _ in started], engine, hashes, tmp_path
    proxy.terminate()
    proxy.wait(timeout=30)
    for process, _, _ in started:
        process.terminate()
        process.wait(timeout=30)


async def _review_every_case(browser, proxy: str, reviewer: str, cookie: str | None, prediction_ids: list[int]):
    """One reviewer in their own browser context: agree with every case, through the proxy."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    if cookie is not None:  # half the reviewers arrive with a replica already chosen, half get one from nginx
        await context.add_cookies([{"name": COOKIE, "value": cookie, "url": proxy}])
    page = await context.new_page()
    page.set_default_timeout(240_000)
    served = set()
    for prediction_id in prediction_ids:
        response = await page.goto(f"{proxy}/review?prediction={prediction_id}&reviewer={reviewer}")
        served.add(response.headers.get("x-replica"))
        try:
            await page.get_by_text(f"Case #{prediction_id}: model says").wait_for()
            await page.get_by_role("button", name="Agree: PNEUMONIA").click()
            await page.get_by_text(f"Review of case #{prediction_id} saved.").wait_for()
        except Exception as error:  # say what the page showed instead
            body = " | ".join((await page.inner_text("body")).split("\n")[-25:])
            raise AssertionError(f"{reviewer}, case {prediction_id}, replica {served}: {body}") from error
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    await context.close()
    return served, cookies.get(COOKIE)


async def _drive(proxy: str, prediction_ids: list[int]):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        cookies = ["0", "1", None, None]
        results = await asyncio.gather(
            *(
                _review_every_case(browser, proxy, reviewer, cookie, prediction_ids)
                for reviewer, cookie in zip(REVIEWERS, cookies, strict=True)
            )
        )
        await browser.close()
    return results


async def _open_directly(urls: list[str], prediction_ids: list[int]) -> list[str]:
    """Each replica on its own address (no proxy): every case's image drawn, or what went wrong."""
    from playwright.async_api import async_playwright

    problems = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(240_000)
        for url in urls:
            for prediction_id in prediction_ids:
                await page.goto(f"{url}/review?prediction={prediction_id}&reviewer=Dr%20Check")
                await page.get_by_text(f"Case #{prediction_id}: model says").wait_for()
                await page.locator(".js-plotly-plot").first.wait_for()  # the viewer drew the stored image
                if "Stored image unavailable" in await page.inner_text("body"):
                    problems.append(f"{url} case {prediction_id}")
        await browser.close()
    return problems


def test_concurrent_reviewers_through_two_replicas_store_each_review_once(replicas):
    proxy, urls, engine, hashes, tmp_path = replicas
    prediction_ids = list(range(1, CASES + 1))
    results = asyncio.run(_drive(proxy, prediction_ids))

    # Sticky: every request of a reviewer went to one replica, the one its cookie names; both replicas served.
    for (served, cookie), preset in zip(results, ["0", "1", None, None], strict=True):
        assert len(served) == 1 and served == {cookie}, (served, cookie)
        assert preset is None or cookie == preset
    assert {cookie for _, cookie in results} == {"0", "1"}

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT reviewer, prediction_id FROM reviews")).all()
    assert len(rows) == len(REVIEWERS) * CASES
    assert sorted(rows) == sorted((r, p) for r in REVIEWERS for p in prediction_ids)  # each exactly once

    # Every image readable from either replica: each has an empty folder of its own, so it came from the PACS.
    assert not asyncio.run(_open_directly(urls, prediction_ids))
    for i in range(2):
        cached = {path.name for path in (tmp_path / f"replica{i}").rglob("*") if path.is_file()}
        assert all(any(h in name for name in cached) for h in hashes), (i, sorted(cached)[:5])
