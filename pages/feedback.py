"""Feedback & export: review counts, model-vs-reviewer agreement, disagreements, and the relabel CSV."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from db import repository
from db.actions import write_relabel_export
from db.engine import session_scope
from pages.common import page_header, database_error_message, engine_or_stop

page_header("Feedback & export")
engine = engine_or_stop()
try:
    with session_scope(engine) as session:
        summary = repository.feedback_summary(session)
        rows = [{
            "prediction": r.prediction_id, "image": r.prediction.image.file_name,
            "model": r.prediction.predicted_label, "reviewer": r.reviewer, "reviewer says": r.corrected_label,
            "confidence": r.confidence, "notes": r.notes, "when": r.created_at.strftime("%Y-%m-%d %H:%M"),
        } for r in repository.disagreements(session)]
except Exception as error:
    st.error(database_error_message(error))
    st.stop()

cols = st.columns(5)
cols[0].metric("Predictions", summary["predictions"])
cols[1].metric("Reviewed", summary["reviewed_predictions"])
cols[2].metric("Current reviews", summary["reviews"])
cols[3].metric("Disagreements", summary["disagreements"])
cols[4].metric("Cohen's kappa (model vs reviewers)", "n/a" if summary["kappa"] is None else f"{summary['kappa']:.3f}")
st.caption("Counts use each reviewer's latest review of a case; earlier ones stay in the history "
           f"({summary['all_reviews']} reviews in all).")

if summary["per_reviewer"]:
    st.subheader("Per reviewer")
    st.dataframe(pd.DataFrame(summary["per_reviewer"]).T, key="per_reviewer")
st.subheader("Disagreements")
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="disagreements")
else:
    st.info("No reviewer disagrees with the model yet.")

st.subheader("Relabel export")
only = st.checkbox("Only images with a disagreement", value=True)
buffer = io.StringIO()
try:
    count = write_relabel_export(engine, buffer, only_disagreements=only)
except Exception as error:
    st.error(database_error_message(error))
    st.stop()
st.download_button(f"Download relabel CSV ({count} rows)", buffer.getvalue(), file_name="relabel.csv",
                   mime="text/csv")
st.caption("Feed it to training: `python -m training.train ... --relabel relabel.csv`; "
           "or `python -m db export --output relabel.csv --images-dir DIR` for an ImageFolder tree.")
