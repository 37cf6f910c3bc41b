"""AppTest fixtures: the real app script against a fresh SQLite file and the shipped model."""

from __future__ import annotations

import pytest

from tests.helpers import REPO_ROOT

APP = str(REPO_ROOT / "streamlit_app.py")


@pytest.fixture()
def app_env(tmp_path, monkeypatch):
    """A private data directory (database + image store) for one test."""
    import streamlit as st

    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PNEUMONIA_CHECKPOINT", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    st.cache_resource.clear()


def open_page(page: str, **query):
    """Run the router, switch to ``pages/<page>.py`` and render it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page != "metrics":
        at.switch_page(f"pages/{page}.py")
        at.run()
    return at
