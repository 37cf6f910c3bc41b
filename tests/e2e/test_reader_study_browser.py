"""A two-reader mini study in a real headless Chromium: create it on the page, read unaided then aided, get the report.

The real Streamlit server and a real SQLite file; the test process reads the same file to know which case
each reader has in front of them (the page hides it) and to check what was stored.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from db import repository
from db.engine import init_db, make_engine, session_scope
from service import reader_studies
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, _wait_idle, seeded_server
from tests.helpers import xray_like

CASES = 4
READERS = ("Dr Ana", "Dr Ben")


def _seed(data_dir: Path) -> dict[int, str]:
    """Eight adjudicated cases (four of each label); returns prediction id -> reference label."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = init_db(make_engine(f"sqlite:///{data_dir / 'reviews.db'}"))
    truth = {}
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, "e" * 64, "best_model.pth", "efficientnet_lite0")
        for seed in range(8):
            label = "PNEUMONIA" if seed % 2 else "NORMAL"
            p = 0.2 + 0.08 * seed if label == "NORMAL" else 0.45 + 0.07 * seed
            buffer = io.BytesIO()
            xray_like(seed, label == "PNEUMONIA", 256).save(buffer, "PNG")
            image = repository.store_image(session, buffer.getvalue(), f"person{seed}_virus_{seed}.png", None)
            called = "PNEUMONIA" if p >= 0.5 else "NORMAL"
            prediction = repository.log_prediction(
                session, image=image, model=model, p_pneumonia=p, threshold=0.5, predicted_label=called
            )
            session.flush()
            repository.add_adjudication(session, image.id, "Dr Lead", label, "consensus")
            truth[prediction.id] = label
    engine.dispose()
    return truth


def _rating(reader: int, modality: str, label: str, position: int) -> int:
    """Readers who are right more often with the AI, with some spread (a flat design has nothing to test)."""
    high = label == "PNEUMONIA"
    if modality == "unaided" and (position + reader) % 3 == 0:
        high = not high  # an unaided miss
    return (4 + (position + reader) % 2) if high else (1 + (position + reader) % 2)


@pytest.fixture()
def study_dashboard(tmp_path, monkeypatch):
    with seeded_server(tmp_path, monkeypatch, _seed) as served:
        yield served


def _sign(page, name: str) -> None:
    box = page.get_by_label("Reviewer name")
    box.fill(name)
    box.press("Enter")
    page.wait_for_timeout(1500)  # the rerun that stores the name
    _wait_idle(page)


def _reads(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT count(*) FROM study_reads").fetchone()[0]


def test_two_readers_read_a_frozen_study_unaided_then_aided_and_download_the_report(study_dashboard, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, data_dir, truth = study_dashboard
    database = data_dir / "reviews.db"
    engine = make_engine(f"sqlite:///{database}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        page.goto(f"{url}/reader_study")
        page.get_by_role("heading", name="Reader study", exact=True).wait_for()
        _wait_idle(page)
        assert "Page not found" not in page.inner_text("body")
        _sign(page, "Dr Lead")  # the study's maker
        page.get_by_label("Study name").fill("Mini study")
        page.get_by_label("Cases").fill(str(CASES))
        page.get_by_label("Readers (one name per line)").fill("\n".join(READERS))
        page.get_by_label("Washout (days)").fill("0")
        page.get_by_role("button", name="Create study (freezes the cases)").click()
        page.get_by_text(f"Study created: {CASES} cases").wait_for()
        frozen = reader_studies.get_study(engine, "Mini study")
        assert frozen.cases == CASES and frozen.normal == frozen.pneumonia == CASES // 2
        assert frozen.readers == list(READERS) and frozen.washout_days == 0

        done = 0
        for index, reader in enumerate(READERS):
            _sign(page, reader)
            for _ in range(2 * CASES):
                step = reader_studies.next_read(engine, "Mini study", reader)
                assert step.case is not None
                page.get_by_text(f"Your reading: {done - index * 2 * CASES} of {2 * CASES} reads done").wait_for()
                _wait_idle(page)
                if step.modality == "unaided":  # the image only: no call, no probability, no heat map
                    page.get_by_text("Session: unaided (image only)").wait_for()
                    expect(page.get_by_text("AI: ")).to_have_count(0)
                    expect(page.get_by_text("heat map", exact=False)).to_have_count(0)
                else:
                    page.get_by_text("Session: aided (with the AI)").wait_for()
                    page.get_by_text(f"AI: {step.case.predicted_label}").wait_for()
                rating = _rating(index, step.modality or "", truth[step.case.prediction_id], step.case.position)
                page.get_by_text(f"{rating}: {reader_studies.RATINGS[rating]}").click()
                page.get_by_role("button", name="Record read").click()
                done += 1
                for _attempt in range(600):  # the store, not the page: a slow rerun keeps the old page up
                    if _reads(database) >= done:
                        break
                    page.wait_for_timeout(200)
                assert _reads(database) == done
            page.get_by_text("You have read every case in both sessions.").wait_for()

        page.get_by_text("OR RRRC: AUC").first.wait_for()
        expect(page.get_by_text("AI alone on the same cases: AUC")).to_be_visible()
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Report (Markdown)").click()
        report = Path(download_info.value.path()).read_text()
        page.screenshot(path=str(tmp_path / "reader_study.png"), full_page=True)
        browser.close()

    assert report.startswith("# Reader study Mini study") and "## Design" in report and "## Results" in report
    assert all(name in report for name in READERS)
    with sqlite3.connect(database) as connection:
        reads = connection.execute(
            "SELECT reader, modality, count(*) FROM study_reads GROUP BY reader, modality ORDER BY reader, modality"
        ).fetchall()
    assert reads == [(name, m, CASES) for name in READERS for m in ("aided", "unaided")]
    progress = {p.reader: p for p in reader_studies.progress(engine, "Mini study")}
    assert all(progress[name].unaided == progress[name].aided == CASES for name in READERS)
    engine.dispose()
