"""ui.charts: the reliability diagram rests every point on enough images, and says how many."""

from __future__ import annotations

import numpy as np

from tests.helpers import REPO_ROOT
from ui.charts import reliability_bins, reliability_figure


def test_equal_count_bins_never_rest_on_a_lone_image():
    rng = np.random.default_rng(0)
    # Most predictions near 0 or 1, a sparse middle: equal-width bins held 1-2 images there (rates 0 or 1).
    scores = np.concatenate([rng.uniform(0, 0.05, 300), rng.uniform(0.95, 1, 380), [0.35, 0.5, 0.62]])
    labels = (rng.uniform(size=len(scores)) < scores).astype(int)
    rows = reliability_bins(labels, scores, bins=10)
    assert len(rows) == 10 and sum(r["n"] for r in rows) == len(scores)
    assert min(r["n"] for r in rows) >= len(scores) // 10
    assert all(r["low"] <= r["observed"] <= r["high"] for r in rows)
    assert [r["predicted"] for r in rows] == sorted(r["predicted"] for r in rows)


def test_the_figure_carries_counts_and_intervals():
    figure = reliability_figure([0, 1, 1, 0, 1, 1], {"after": [0.1, 0.8, 0.9, 0.3, 0.7, 0.95]}, bins=3)
    curve = figure.data[1]
    assert list(curve.customdata) == [2, 2, 2] and curve.error_y.array is not None
    assert curve.name == "after (3 bins of about 2 images)"


def test_pandas_is_whole_before_any_figure_can_be_built():
    """Plotly's validators read ``sys.modules["pandas"]`` without importing it: a figure built while another
    session's thread was half-way through importing pandas drew a traceback. Importing the chart module
    must finish pandas first (a fresh interpreter, so nothing else imported it)."""
    import subprocess
    import sys

    code = "import sys, ui.charts; p = sys.modules.get('pandas'); print(p is not None and hasattr(p, 'Series'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "True", result.stderr
