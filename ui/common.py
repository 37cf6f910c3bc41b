"""What every page shares: the navigation, the cached model and store, and small UI helpers.

Pages call ``core`` and ``service`` (the use-case layer) only; never torch, SQL or sessions.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st
from streamlit.logger import get_logger

from core.checkpoint import CheckpointError
from core.registry import default_checkpoint
from service import known_models, model_versions, store
from service.reader_study import Identity
from service.store import Store

if TYPE_CHECKING:
    from core.inference import Predictor

REPORT_SUFFIX = ".json"
_LOGGER = get_logger(__name__)


@dataclass(frozen=True)
class PageEntry:
    """One page of the dashboard."""

    path: str
    title: str
    icon: str
    url_path: str


NAVIGATION = [
    PageEntry("pages/metrics.py", "Metrics", ":material/monitoring:", "metrics"),
    PageEntry("pages/predict.py", "Predict", ":material/upload_file:", "predict"),
    PageEntry("pages/review.py", "Review", ":material/rate_review:", "review"),
    PageEntry("pages/adjudication.py", "Adjudication", ":material/gavel:", "adjudication"),
    PageEntry("pages/feedback.py", "Feedback & export", ":material/download:", "feedback"),
    PageEntry("pages/reader_study.py", "Reader study", ":material/groups:", "reader_study"),
    PageEntry("pages/worklist.py", "Worklist (PACS)", ":material/list_alt:", "worklist"),
]
"""The one list of pages: the router and the sidebar links both read it. Addresses have no hyphen:
Streamlit 1.x answers ``/reader-study`` with "Page not found" while it runs the page."""


def page_header(title: str) -> None:
    """Page settings, the sidebar navigation and the title; every page starts with this.

    The links are drawn here rather than by ``st.navigation`` so that they look
    the same when Streamlit runs a page file on its own (a first visit straight
    to ``/review`` before the router has run).
    """
    st.set_page_config(page_title=f"{title} · Pneumonia X-ray review", page_icon=":material/radiology:", layout="wide")
    warm_up_model()  # before anything is drawn: the store and the model load while the page draws
    with st.sidebar:
        for entry in NAVIGATION:
            st.page_link(entry.path, label=entry.title, icon=entry.icon)
        st.divider()
    st.title(title)
    access_gate()


HEAT_LEGEND = (
    "Grad-CAM colours: red and yellow mark the regions that drove the model's call most, blue the least. "
    "It shows where the model looked, not where the disease is."
)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def auth_configured() -> bool:
    """True when Streamlit's OpenID Connect sign-in is set up (``[auth]`` in ``.streamlit/secrets.toml``)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises its own not-found error
        return False


def access_gate() -> None:
    """Who may see this page; stops the page otherwise.

    With sign-in configured, nothing but the sign-in prompt is shown until the
    user has signed in. Without it the dashboard serves loopback only, unless
    ``PNEUMONIA_ALLOW_OPEN_SERVER=1`` accepts an open server (then every page says so).
    """
    if auth_configured():
        if not st.user.get("is_logged_in", False):
            st.info("Sign in to use the review dashboard.")
            st.button("Sign in", on_click=st.login, key="sign_in")
            st.stop()
        with st.sidebar:
            st.text(f"Signed in as {st.user.get('email') or st.user.get('name') or 'user'}")
            st.button("Sign out", on_click=st.logout, key="sign_out")
        return
    address = str(st.get_option("server.address") or "")  # unset means every interface
    if address in LOOPBACK:
        return
    if os.environ.get("PNEUMONIA_ALLOW_OPEN_SERVER") == "1":
        st.warning(
            "Open server: this dashboard is reachable on the network without sign-in, so anyone who can "
            "reach it can read X-rays and write reviews under any name."
        )
        return
    st.error(
        "Refusing to serve on a network address without sign-in. Configure sign-in ([auth] in "
        ".streamlit/secrets.toml, see the README) or serve on 127.0.0.1; PNEUMONIA_ALLOW_OPEN_SERVER=1 "
        "accepts an open server."
    )
    st.stop()


_WARM_UP: list[Future[tuple[str, Predictor]]] = []
"""The load :func:`warm_up_model` started (the checkpoint in force and its predictor), until
:func:`get_predictor` takes it."""
_WARMED: set[str] = set()
"""Not empty once this process started its one warm-up (a cleared cache loads afresh)."""
_WARM_UP_LOCK = threading.Lock()


def _load_predictor(path: str) -> Predictor:
    from core.inference import Predictor

    # On the CPU a checkpoint with an ONNX export and a serving manifest answers calls and draws heat maps
    # without torch; the torch network loads on first use (fine-tuning, the site head, an older export's map).
    return Predictor.from_checkpoint(path, "cpu")


def warm_up_model() -> None:
    """Start opening the store and loading the checkpoint in force in a background thread, once per process.

    Every page calls this first (:func:`page_header`; a first visit straight to a page runs that page
    without the router), so the page draws while the store opens and the model loads on the other
    core, and the first upload does not wait for all of it. ``PNEUMONIA_MODEL_WARM_UP=0`` turns it off
    (the tests do: each AppTest would load the model in the background).
    """
    if _WARMED or os.environ.get("PNEUMONIA_MODEL_WARM_UP", "1") == "0":
        return  # every script run calls this: after the first warm-up it costs one set lookup
    with _WARM_UP_LOCK:
        if _WARMED:
            return
        _WARMED.add("started")
        future: Future[tuple[str, Predictor]] = Future()
        _WARM_UP.append(future)

    def load() -> None:
        began = time.monotonic()
        try:
            path = str(model_versions.checkpoint_in_force(get_engine())[0])
            future.set_result((path, _load_predictor(path)))
        except BaseException as error:  # noqa: BLE001 - the page that waits loads again and says what is wrong
            future.set_exception(error)
            return
        with contextlib.suppress(Exception):  # then what the first heat map needs
            _warm_up_heat_maps(future.result()[1])
        _LOGGER.info(
            "Warm-up: store open, model %s ready in %.2f s", future.result()[1].version, time.monotonic() - began
        )

    threading.Thread(target=load, name="model-warm-up", daemon=True).start()


def _warm_up_heat_maps(predictor: Predictor) -> None:
    """Ready the first heat map: one Grad-CAM pass on a blank image when the ONNX file computes Grad-CAM
    (ONNX Runtime's first run allocates its buffers), else torch and the network."""
    import core.explain

    if predictor.serves_grad_cam:
        from PIL import Image

        blank = Image.new("RGB", (predictor.meta.image_size,) * 2)
        core.explain.overlay(blank, predictor.grad_cam(blank, "NORMAL"))
    else:
        predictor.model  # noqa: B018 - loads the lazy torch network


@st.cache_resource(show_spinner="Loading the model…")
def get_predictor(path: str | None = None) -> Predictor:
    """The checkpoint, loaded once per server process (at the checkpoint's own operating point); a load that
    :func:`warm_up_model` started is waited for, not repeated (its error, if any, is raised by a fresh load)."""
    path = str(path or default_checkpoint())
    with _WARM_UP_LOCK:
        warming = _WARM_UP.pop() if _WARM_UP else None
    if warming is not None:
        with contextlib.suppress(Exception):  # a failed warm-up: load again here, so the page shows this run's error
            warmed_path, predictor = warming.result()
            if warmed_path == path:
                return predictor
    return _load_predictor(path)


@st.cache_resource(show_spinner=False)
def get_engine() -> Store:
    """The database engine, created (and migrated) once per server process."""
    return store.open_store()


USER_TEXT_COLUMNS = ("reviewer", "reader", "readers", "notes", "image", "reviewer says", "blind call", "verdict")
"""Columns of the app's tables that can hold text a user typed or uploaded."""


def user_text_table(rows: list[dict[str, Any]], **options: Any) -> None:
    """A table holding user text (names, notes, file names), shown as plain text.

    Its cells are neutralised as the app's own CSV export is (:func:`core.serialization.csv_safe`: a
    leading ``'`` before ``=``, ``+``, ``-``, ``@``), because the table's toolbar offers "Download as
    CSV" and a spreadsheet would run ``=HYPERLINK(...)`` from a note.
    """
    import pandas as pd

    from core.serialization import csv_safe

    frame = pd.DataFrame(rows)
    for column in frame.columns.intersection(USER_TEXT_COLUMNS):
        frame[column] = frame[column].map(csv_safe)
    st.dataframe(frame, hide_index=True, **options)


def show_problem(title: str, detail: str) -> None:
    """An error box with a fixed title, and the detail as plain text (it may quote user text: never Markdown)."""
    st.error(title)
    st.text(detail)


def show_store_error(error: Exception) -> None:
    """A store failure or refused input (nothing was saved), the message shown as plain text."""
    if isinstance(error, store.StoreUnavailable):
        show_problem("The review database is not available; nothing was saved.", str(error))
    else:
        show_problem("Not saved: the input was refused.", str(error))


def engine_or_stop() -> Store:
    """The database engine, or a clear message and a stopped page."""
    try:
        return get_engine()
    except store.StoreUnavailable as error:
        show_store_error(error)
        st.stop()
        raise  # unreachable: st.stop() ends the script run


def predictor_or_stop(engine: Store | None = None) -> Predictor:
    """The model in use (promoted, else default) at the operating point in force, or a message and a stopped page.

    Args:
        engine: the store whose promotion and saved operating point apply; the default checkpoint at its own
            operating point when ``None``.
    """
    try:
        path, why = model_versions.checkpoint_in_force(engine) if engine is not None else (default_checkpoint(), "")
        if why.startswith("default checkpoint:"):  # a promoted file went missing or changed
            st.warning(f"Using the {why}")
        predictor = get_predictor(str(path))
    except store.StoreUnavailable as error:
        show_store_error(error)
        st.stop()
        raise
    except CheckpointError as error:
        show_problem("The model could not be loaded.", str(error))
        st.info(
            "Train one (`python -m training.train ...`) and copy its best_model.pth to models/, "
            "or set PNEUMONIA_CHECKPOINT to a checkpoint file."
        )
        st.stop()
        raise
    if engine is None:
        return predictor
    try:
        return known_models.predictor_in_force(engine, predictor)
    except store.StoreUnavailable as error:
        show_store_error(error)
        st.stop()
        raise


def load_report(path: str | Path | None = None) -> dict[str, Any] | None:
    """The shipped model's evaluation report (``models/best_model.json``), if present."""
    path = Path(path) if path else default_checkpoint().with_suffix(REPORT_SUFFIX)
    return _read_json(str(path), path.stat().st_mtime if path.exists() else 0.0)


@st.cache_data(show_spinner=False)
def _read_json(path: str, _mtime: float) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def reviewer_name_input() -> str:
    """A reviewer-name box remembered for the browser session and, through the address (``?reviewer=``), a reload.

    Only for typed names (no sign-in configured): they are unverified anyway.
    """
    remembered = st.session_state.get("reviewer_name") or str(st.query_params.get("reviewer", ""))[:100]
    name = st.text_input("Reviewer name", value=remembered, max_chars=100, key="reviewer_name_box")
    st.session_state["reviewer_name"] = name
    if name.strip():
        st.query_params["reviewer"] = name.strip()
    else:
        st.query_params.pop("reviewer", None)
    return name.strip()


def current_identity() -> Identity | None:
    """Who is reviewing: the signed-in identity when sign-in is configured (it cannot be typed),
    else the typed name, marked unverified. ``None`` until a name is typed."""
    if auth_configured() and st.user.get("is_logged_in", False):
        name = str(st.user.get("email") or st.user.get("name") or "").strip()
        st.caption(f"Reviewing as {name} (signed in)")
        return Identity(name, True) if name else None
    name = reviewer_name_input()
    st.caption("Typed names are stored and shown as unverified; configure sign-in to verify reviewers.")
    return Identity(name, False) if name else None
