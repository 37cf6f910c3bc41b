"""Server start-up: what ``streamlit run`` does before the first browser connects.

``streamlit_app.py`` hands :func:`lifespan` to ``st.App``, so it runs once per server process as the
server starts, not in a session. It only starts a thread: the server answers at once while the store
opens, the model loads (:func:`ui.common.warm_up_model`) and the Predict page's modules are imported.
A server started before the day's first reader arrives has it all ready for the first call; without
it the first visit paid for it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

FIRST = ("ui.common", "service.predictions")
"""What the Predict page needs for its first call. Not every page's modules (plotly, pandas, the PACS
client): importing them while the server sends a browser the app's scripts held Python's lock and made
the first prediction 1.5-2.5 s slower (``benchmarks/dashboard.py --start-only``, docs/results.md)."""


def preload() -> None:
    """Import what the first call needs, then start the model's warm-up."""
    for name in FIRST:
        importlib.import_module(name)
    from ui import common

    common.warm_up_model()


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """``st.App``'s lifespan hook: :func:`preload` in the background while the server serves."""
    threading.Thread(target=preload, name="start-up", daemon=True).start()
    yield
