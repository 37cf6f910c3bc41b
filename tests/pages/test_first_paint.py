"""Each page draws its title before it imports its heavy sections (pandas, plotly, scipy), so a fresh
server shows the page at once: the first Metrics visit drew its title after 3.2 s, now 1.2-1.4 s."""

from __future__ import annotations

import sys

import pytest

from tests.pages.conftest import open_page

HEAVY_SECTIONS = [
    ("metrics", "Model performance on held-out patients", "ui.report_view"),
    ("review", "Review", "ui.viewer"),
    ("adjudication", "Adjudication", "ui.viewer"),
    ("reader_study", "Reader study", "ui.viewer"),
    ("feedback", "Feedback & export", "ui.mrmc_section"),
]


@pytest.mark.parametrize(("page", "title", "module"), HEAVY_SECTIONS)
def test_title_is_drawn_before_the_heavy_sections_are_imported(app_env, monkeypatch, page, title, module):
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    at = open_page(page)
    assert at.exception and module in at.exception[0].message  # it stopped at that import, after the title
    assert [t.value for t in at.title] == [title]
