"""Feedback & export: review counts, model-vs-reviewer agreement, disagreements, and the relabel CSV."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from db import actions
from pages.common import engine_or_stop, page_header, show_store_error

page_header("Feedback & export")
engine = engine_or_stop()
try:
    view = actions.feedback_view(engine)
except actions.StoreUnavailable as error:
    show_store_error(error)
    st.stop()
summary = view.summary

cols = st.columns(5)
cols[0].metric("Predictions", summary["predictions"])
cols[1].metric("Reviewed", summary["reviewed_predictions"])
cols[2].metric("Current reviews", summary["reviews"])
cols[3].metric("Disagreements", summary["disagreements"])
cols[4].metric("Cohen's kappa (model vs reviewers)", "n/a" if summary["kappa"] is None else f"{summary['kappa']:.3f}")
st.caption(
    "Counts use each reviewer's latest review of a case; earlier ones stay in the history "
    f"({summary['all_reviews']} reviews in all)."
)

if summary["per_reviewer"]:
    st.subheader("Per reviewer")
    st.dataframe(pd.DataFrame(summary["per_reviewer"]).T, key="per_reviewer")
st.subheader("Disagreements")
if view.disagreements:
    st.dataframe(pd.DataFrame(view.disagreements), hide_index=True, key="disagreements")
else:
    st.info("No reviewer disagrees with the model yet.")

st.subheader("Relabel export")
only = st.checkbox("Only images with a disagreement", value=True)
buffer = io.StringIO()
try:
    count = actions.write_relabel_export(engine, buffer, only_disagreements=only)
except actions.StoreUnavailable as error:
    show_store_error(error)
    st.stop()
st.download_button(f"Download relabel CSV ({count} rows)", buffer.getvalue(), file_name="relabel.csv", mime="text/csv")
st.caption(
    "Feed it to training: `python -m training.train ... --relabel relabel.csv`; "
    "or `python -m db export --output relabel.csv --images-dir DIR` for an ImageFolder tree."
)
