"""Who may see the dashboard: sign-in when configured, loopback by default, an open server only on request."""

from __future__ import annotations

import pytest
from streamlit import config

from tests.helpers import REPO_ROOT
from tests.pages.conftest import APP, open_page


def test_served_on_loopback_by_default():
    text = (REPO_ROOT / ".streamlit" / "config.toml").read_text()
    assert 'address = "127.0.0.1"' in text
    assert "--server.address 127.0.0.1" in (REPO_ROOT / "Makefile").read_text()


@pytest.mark.parametrize("page", ["metrics", "predict", "review", "adjudication", "feedback"])
def test_with_sign_in_configured_only_the_prompt_is_shown(app_env, page):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "id",
        "client_secret": "secret",
        "server_metadata_url": "https://accounts.example.invalid/.well-known/openid-configuration",
    }
    at.run()
    if page != "metrics":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception
    assert [i.value for i in at.info] == ["Sign in to use the review dashboard."]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.metric and not at.dataframe and not at.get("file_uploader")


@pytest.fixture()
def network_address():
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", "127.0.0.1")


def test_network_address_without_sign_in_is_refused(app_env, network_address, monkeypatch):
    monkeypatch.delenv("PNEUMONIA_ALLOW_OPEN_SERVER", raising=False)
    at = open_page("feedback")
    assert not at.exception
    assert any(e.value.startswith("Refusing to serve on a network address without sign-in") for e in at.error)
    assert not at.metric


def test_an_open_server_says_so_on_every_page(app_env, network_address, monkeypatch):
    monkeypatch.setenv("PNEUMONIA_ALLOW_OPEN_SERVER", "1")
    at = open_page("feedback")
    assert not at.exception
    assert any(w.value.startswith("Open server:") for w in at.warning)
    assert any(m.label == "Predictions" for m in at.metric)


@pytest.mark.parametrize("page", ["metrics", "predict", "review", "adjudication", "feedback"])
def test_newer_schema_database_is_one_message_on_every_page(app_env, page):
    from service.store import open_store

    engine = open_store()
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    at = open_page(page)
    assert not at.exception
    assert [e.value for e in at.error] == ["The review database is not available; nothing was saved."]
    assert any("revision 9999, newer than this app's" in t.value for t in at.text)


def test_the_server_watches_no_files_so_it_idles():
    """Watching the repository (and .venv's 6,000 folders) kept an idle server at 35-90 % of a core."""
    import tomllib

    settings = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["fileWatcherType"] == "none" and settings["server"]["runOnSave"] is False
