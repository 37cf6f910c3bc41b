"""The Worklist page against a real Orthanc: pull from the page, PNEUMONIA first, links to the reviews."""

from __future__ import annotations

from pacs.client import PacsClient
from tests.helpers import real_xrays
from tests.pacs.conftest import radiograph, xray_pixels
from tests.pages.conftest import app_env, open_page

__all__ = ["app_env"]


def test_pull_from_the_page_and_triage_order(app_env, pacs_url, monkeypatch):
    monkeypatch.setenv("DICOMWEB_URL", pacs_url)
    paths = real_xrays(2, "NORMAL") + real_xrays(2, "PNEUMONIA")
    PacsClient(pacs_url).store([radiograph(xray_pixels(p)) for p in paths])
    at = open_page("worklist")
    assert not at.exception and any(pacs_url in c.value for c in at.caption)
    at.button(key="pull").click().run()
    assert not at.exception and not at.error
    assert any(s.value.startswith("Logged 4 new prediction(s)") for s in at.success)
    calls = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")]
    assert len(calls) == 4 and calls == sorted(calls, key=lambda c: c != "PNEUMONIA")
    assert all("result in the PACS" in t.value for t in at.text if t.value.startswith("Study "))


def test_without_a_pacs_the_page_says_how_to_configure_one(app_env, monkeypatch):
    monkeypatch.delenv("DICOMWEB_URL", raising=False)
    at = open_page("worklist")
    assert not at.exception
    assert any(c.value.startswith("No PACS configured") for c in at.caption)
    assert any(i.value == "Nothing pulled from the PACS yet." for i in at.info)
