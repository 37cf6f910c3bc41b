"""What every page shares: the cached model and database engine, and small UI helpers.

Pages call ``core`` and ``db`` through here or directly; never torch or SQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from core.checkpoint import CheckpointError
from core.inference import Predictor, default_checkpoint
from db.engine import init_db, make_engine, session_scope
from db import repository

REPORT_SUFFIX = ".json"


NAVIGATION = [
    ("pages/metrics.py", "Metrics", ":material/monitoring:"),
    ("pages/predict.py", "Predict", ":material/upload_file:"),
    ("pages/review.py", "Review", ":material/rate_review:"),
    ("pages/feedback.py", "Feedback & export", ":material/download:"),
]


def page_header(title: str) -> None:
    """Page settings, the sidebar navigation and the title; every page starts with this.

    The links are drawn here rather than by ``st.navigation`` so that they look
    the same when Streamlit runs a page file on its own (a first visit straight
    to ``/review`` before the router has run).
    """
    st.set_page_config(page_title=f"{title} · Pneumonia X-ray review", page_icon=":material/radiology:",
                       layout="wide")
    with st.sidebar:
        for path, label, icon in NAVIGATION:
            st.page_link(path, label=label, icon=icon)
        st.divider()
    st.title(title)


@st.cache_resource(show_spinner="Loading the model…")
def get_predictor(path: str | None = None) -> Predictor:
    """The checkpoint, loaded once per server process."""
    return Predictor.from_checkpoint(path or default_checkpoint(), "auto")


@st.cache_resource(show_spinner=False)
def get_engine() -> Engine:
    """The database engine, created (and migrated) once per server process."""
    return init_db(make_engine())


def predictor_or_stop() -> Predictor:
    """The model, or a clear message and a stopped page when it cannot be loaded."""
    try:
        return get_predictor()
    except CheckpointError as error:
        st.error(f"The model could not be loaded: {error}")
        st.info("Train one (`python -m training.train ...`) and copy its best_model.pth to models/, "
                "or set PNEUMONIA_CHECKPOINT to a checkpoint file.")
        st.stop()


def engine_or_stop() -> Engine:
    """The database engine, or a clear message and a stopped page."""
    try:
        return get_engine()
    except (SQLAlchemyError, OSError) as error:
        st.error(f"The review database is not available: {str(error).splitlines()[0][:200]}")
        st.stop()


def database_error_message(error: Exception) -> str:
    """One line for the user about a database failure (nothing was saved)."""
    if isinstance(error, OperationalError) and "locked" in str(error).lower():
        return "The database is busy (locked by another writer). Nothing was saved; please try again."
    return f"Database error, nothing was saved: {str(error).splitlines()[0][:200]}"


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


def active_threshold(engine: Engine, predictor: Predictor) -> float:
    """The operating point in force: the last one saved for this model, else the checkpoint's."""
    with session_scope(engine) as session:
        model = repository.get_or_create_model(session, predictor.checkpoint_sha256,
                                               Path(predictor.checkpoint_path).name, predictor.meta.arch)
        saved = repository.active_threshold(session, model)
    return predictor.threshold if saved is None else float(saved)


def reviewer_name_input() -> str:
    """A reviewer-name box remembered for the browser session."""
    name = st.text_input("Reviewer name", value=st.session_state.get("reviewer_name", ""), max_chars=100,
                         key="reviewer_name_box")
    st.session_state["reviewer_name"] = name
    return name.strip()
