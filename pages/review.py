"""Review: the queue (unreviewed and most uncertain first), one case at a time, and the review form."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pandas as pd
import streamlit as st

from core.images import ImageLoadError, load_image
from db import actions
from db.repository import MAX_NOTES
from pages.common import engine_or_stop, page_header, predictor_or_stop, reviewer_name_input, show_store_error

page_header("Review")
if st.session_state.get("last_saved"):
    st.success(st.session_state.pop("last_saved"))
engine = engine_or_stop()
reviewer = reviewer_name_input()

with st.sidebar:
    st.subheader("Queue filters")
    label_filter = st.selectbox("Model's call", ["any", "NORMAL", "PNEUMONIA"], key="label_filter")
    only_mine = st.checkbox("Only cases I have not reviewed", value=True)
    include_reviewed = st.checkbox("Include cases others reviewed", value=True)
    try:
        models = {m.version: m.id for m in actions.list_models(engine)}
    except actions.StoreUnavailable as error:
        show_store_error(error)
        st.stop()
    model_choice = st.selectbox("Model", ["any", *models], key="model_filter")
    first_day = st.date_input("Predicted from", value=None, key="since_filter")
    last_day = st.date_input("Predicted until", value=None, key="until_filter")

since = datetime.combine(first_day, time.min, tzinfo=UTC) if first_day else None
until = datetime.combine(last_day, time.max, tzinfo=UTC) if last_day else None
filters = actions.QueueFilters(
    model_id=models.get(model_choice),
    predicted_label=None if label_filter == "any" else label_filter,
    reviewer=reviewer if only_mine and reviewer else None,
    since=since,
    until=until,
    include_reviewed=include_reviewed,
)
case = None
try:
    queue = actions.load_queue(engine, filters, limit=100)
    requested = st.query_params.get("prediction")
    if requested:
        try:
            case = actions.load_case(engine, int(requested))
        except (ValueError, actions.ValidationError):
            st.warning("No prediction with the id in the link; showing the queue instead.")
            st.text(f"Requested: {requested[:40]}")  # user text: plain, never Markdown
    if case is None and queue:
        case = queue[0]
except actions.StoreUnavailable as error:
    show_store_error(error)
    st.stop()

st.caption(f"{len(queue)} case(s) in the queue with these filters (unreviewed first, then most uncertain).")
if case is None:
    st.info("Nothing to review. Upload X-rays on the Predict page.")
    st.stop()
assert case is not None

left, right = st.columns([1, 1])
with left:
    try:
        image = load_image(case.image_path, name=case.file_name)
        show = st.toggle("Heat map", value=False)
        if show:
            from core.explain import gradcam, overlay  # imported on first use: it pulls in grad-cam

            opacity = st.slider("Opacity", 0.0, 1.0, 0.4, 0.05)
            image = overlay(image, gradcam(predictor_or_stop(engine), image, case.predicted_label), opacity)
        st.text(case.file_name)  # user text: plain, never Markdown
        st.image(image)
    except ImageLoadError as error:
        st.error(f"Stored image unavailable: {error}")
with right:
    st.subheader(f"Case #{case.id}: model says {case.predicted_label}")
    st.write(f"NORMAL: {case.p_normal:.4f} · PNEUMONIA: {case.p_pneumonia:.4f} · threshold {case.threshold:.3f}")
    st.caption(f"Model {case.model_version} · {case.created_at:%Y-%m-%d %H:%M} UTC")
    history = case.reviews
    if history:
        st.write("Earlier reviews")
        superseded = {r.supersedes_id for r in history}
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "when": r.created_at.strftime("%Y-%m-%d %H:%M"),
                        "reviewer": r.reviewer,
                        "verdict": "agrees" if r.agrees else f"says {r.corrected_label}",
                        "confidence": r.confidence,
                        "notes": r.notes,
                        "superseded": r.id in superseded,
                    }
                    for r in history
                ]
            ),
            hide_index=True,
        )  # a dataframe shows notes as plain text

    with st.form("review_form", clear_on_submit=True):
        verdict = st.radio("Your verdict", ["Agree", "Disagree"], horizontal=True, key="verdict")
        other = "NORMAL" if case.predicted_label == "PNEUMONIA" else "PNEUMONIA"
        corrected = st.selectbox("Correct label (if you disagree)", [other, case.predicted_label], key="corrected")
        confidence = st.select_slider(
            "Your confidence", ["unsure", "low", "medium", "high"], value="high", key="confidence"
        )
        notes = st.text_area("Notes", max_chars=MAX_NOTES, key="notes")
        submitted = st.form_submit_button("Submit review")
    if submitted:
        try:
            actions.submit_review(
                engine,
                case.id,
                reviewer,
                verdict == "Agree",
                None if verdict == "Agree" else corrected,
                confidence,
                notes,
            )
        except (actions.ValidationError, actions.StoreUnavailable) as error:
            show_store_error(error)
        else:
            st.session_state["last_saved"] = f"Review of case #{case.id} saved."
            st.query_params.clear()  # move on to the next case in the queue
            st.rerun()
