"""Adjudication: cases whose reviewers disagree (or disagree with the model, as configured) get a final label.

Everyone can read the queue; only identities in ``PNEUMONIA_ADJUDICATORS`` can record
a final label, with a reason. The resolved label of a case is then the adjudicated one.
"""

from __future__ import annotations

import streamlit as st

from service import reader_study, store
from service.reviews import LABELS, MAX_NOTES
from ui.common import current_identity, engine_or_stop, page_header, show_problem, show_store_error, user_text_table

page_header("Adjudication")
# The title is drawn before the viewer is imported (plotly, pandas: about 0.5 s on a fresh server).
from ui.viewer import show_stored_xray

if st.session_state.get("last_adjudicated"):
    st.success(st.session_state.pop("last_adjudicated"))
    for recorded in ("final_label", "adjudication_reason"):  # the next case starts with an empty form
        st.session_state.pop(recorded, None)
engine = engine_or_stop()
identity = current_identity()
with st.sidebar:
    with_model = st.toggle(
        "Also when reviewers disagree with the model",
        value=reader_study.adjudicate_model_disagreements(),
        key="adjudicate_with_model",
    )
try:
    queue = reader_study.adjudication_queue(engine, with_model)
except store.StoreUnavailable as error:
    show_store_error(error)
    st.stop()

st.caption(f"{len(queue)} case(s) waiting for a final label, oldest first.")
if not queue:
    st.info("No disagreement waits for adjudication.")
    st.stop()
can_adjudicate = identity is not None and identity.is_adjudicator
if not can_adjudicate:
    st.warning(
        "Only adjudicators (the PNEUMONIA_ADJUDICATORS setting), signed in, can record a final label; others can "
        "read. A typed name counts only with PNEUMONIA_TYPED_ADJUDICATORS=1 (a single-user machine)."
    )

choices = {f"Image #{c.image_id} · {c.why}": c for c in queue}
case = choices[st.selectbox("Case", list(choices), key="adjudication_case")]


left, right = st.columns([3, 2])
with left:
    show_stored_xray(case.image_path, case.file_name, f"adjudication-{case.image_id}", engine, case.model_label)
with right:
    st.subheader(f"Image #{case.image_id}: model says {case.model_label}")
    st.caption(
        f"PNEUMONIA {case.p_pneumonia:.4f} · threshold {case.threshold:.3f} · {case.model_version} · "
        f"prediction #{case.prediction_id}"
    )
    st.write("Reviewers' calls")
    user_text_table(
        [
            {
                "reviewer": c.reviewer,
                "blind call": c.blind_call or "",
                "call": c.call,
                "confidence": c.confidence,
                "notes": c.notes,
                "when": c.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for c in case.calls
        ],
        key="adjudication_calls",
    )
    st.text(case.resolution)  # the label and why, with names: plain text
    # Not cleared on submit: a refused submission (no reason yet) must keep the label that was chosen.
    with st.form("adjudication_form"):
        label = st.radio("Final label", list(LABELS), index=None, horizontal=True, key="final_label")
        reason = st.text_area("Reason (required)", max_chars=MAX_NOTES, key="adjudication_reason")
        submitted = st.form_submit_button("Record final label", disabled=not can_adjudicate)
    if submitted and identity is not None and label is None:
        show_problem("Not saved: choose the final label.", "No label is chosen for you.")
    elif submitted and identity is not None:
        try:
            reader_study.adjudicate(engine, case.image_id, identity, label, reason)
        except (store.ValidationError, store.StoreUnavailable) as error:
            show_store_error(error)
        else:
            st.session_state["last_adjudicated"] = f"Final label of image #{case.image_id} recorded: {label}."
            st.rerun()
