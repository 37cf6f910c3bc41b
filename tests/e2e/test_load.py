"""The load test (``benchmarks/load.py``) at a small size: concurrent browser sessions upload with the heat
map on and review; the server stays up and every acknowledged prediction and review is stored."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.e2e.test_browser import CHROMIUM
from tests.helpers import REPO_ROOT, skip_unless_available


@pytest.mark.slow
def test_concurrent_sessions_upload_and_review_with_heat_maps(capsys):
    skip_unless_available(
        Path(CHROMIUM).exists(), "Debian's chromium", "enable with 'apt-get install chromium' (.ci/run does)"
    )
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import load

    report = load.main(
        load.get_args_parser().parse_args(["--sessions", "3", "--images", "2", "--blind", "--timeout", "300"])
    )
    assert report.errors == []
    assert report.server_alive
    assert (report.stored_predictions, report.stored_reviews) == (6, 3)
    assert report.acknowledged_missing == []
    assert all(len(r.calls) == 2 and r.heat_maps is not None and r.review is not None for r in report.results)
    assert "rows stored: 6 predictions (expected 6), 3 reviews (expected 3)" in capsys.readouterr().out
