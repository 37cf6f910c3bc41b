"""Review: the queue (unreviewed and most uncertain first), one case at a time in a large viewer.

With blind first read on, the model's call, probabilities, heat map and other
reviewers' calls stay hidden until the reviewer has recorded their own call;
then the AI's output is shown and they keep or change it (both are stored).
Keyboard: 1 / 2 record a blind call, A agrees, D disagrees, N skips to the next case.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from service import known_models, reader_study, reviews, store
from service.reviews import CONFIDENCE_LEVELS, MAX_NOTES, OUT_OF_DOMAIN_WARNING, UNUSABLE
from ui.case_pick import pick_case
from ui.common import current_identity, engine_or_stop, page_header, show_store_error, user_text_table

CONFIDENCE = list(reversed(CONFIDENCE_LEVELS))  # unsure ... high, for the slider

page_header("Review")
# The title is drawn before the viewer is imported (plotly, pandas: about 0.5 s on a fresh server).
from ui.viewer import show_stored_xray

if st.session_state.get("last_saved"):
    st.success(st.session_state.pop("last_saved"))
engine = engine_or_stop()
identity = current_identity()

with st.sidebar:
    queue_kind = st.radio("Queue", ["Predictions", "Training data"], key="queue_kind", horizontal=True)
    blind = st.toggle(
        "Blind first read",
        value=reader_study.blind_read_default(),
        key="blind_read",
        help="Hide the model's output until you have recorded your own call (guards against automation bias).",
    )
    st.subheader("Queue filters")
    label_filter = st.selectbox("Model's call", ["any", "NORMAL", "PNEUMONIA"], key="label_filter", disabled=blind)
    only_mine = st.checkbox("Only cases I have not reviewed", value=True)
    include_reviewed = st.checkbox("Include cases others reviewed", value=True)
    try:
        models = {m.version: m.id for m in known_models.list_models(engine)}
    except store.StoreUnavailable as error:
        show_store_error(error)
        st.stop()
    model_choice = st.selectbox("Model", ["any", *models], key="model_filter")
    first_day = st.date_input("Predicted from", value=None, key="since_filter")
    last_day = st.date_input("Predicted until", value=None, key="until_filter")

reviewer = identity.name if identity else ""
since = datetime.combine(first_day, time.min, tzinfo=UTC) if first_day else None
until = datetime.combine(last_day, time.max, tzinfo=UTC) if last_day else None
filters = reviews.QueueFilters(
    model_id=models.get(model_choice),
    predicted_label=None if label_filter == "any" or blind else label_filter,
    reviewer=reviewer if only_mine and reviewer else None,
    since=since,
    until=until,
    include_reviewed=include_reviewed,
    training_data=queue_kind == "Training data",
)
skipped: set[int] = st.session_state.setdefault("skipped_cases", set())
case = None
selection = "outside"
try:
    queue = reviews.load_queue(engine, filters, limit=100)
    requested = st.query_params.get("prediction")
    if requested:
        try:
            case = reviews.load_case(engine, int(requested))
        except (ValueError, store.ValidationError):
            st.warning("No prediction with the id in the link; showing the queue instead.")
            st.text(f"Requested: {requested[:40]}")  # user text: plain, never Markdown
    if case is None and queue:
        case, selection = pick_case(engine, filters, queue, skipped)
    blind_read = reader_study.blind_read_of(engine, case.id, reviewer) if case is not None and reviewer else None
except store.StoreUnavailable as error:
    show_store_error(error)
    st.stop()

if case is not None and requested and str(case.id) == requested:
    st.caption(
        f"Prediction #{case.id}, opened from its link; {len(queue)} case(s) in the queue with these filters "
        "(unreviewed first, then most uncertain)."
    )
else:
    st.caption(f"{len(queue)} case(s) in the queue with these filters (unreviewed first, then most uncertain).")
if selection == "audit":
    st.caption(
        "Audit case: drawn at random, not by uncertainty (PNEUMONIA_AUDIT_FRACTION), so that the site figures "
        "rest on a sample of the site."
    )
if case is None:
    st.info(
        "Nothing to review. "
        + (
            "Queue doubted training labels with `python -m training.label_issues`."
            if queue_kind == "Training data"
            else "Upload X-rays on the Predict page."
        )
    )
    st.stop()
assert case is not None
blind_pending = blind and blind_read is None


def _next_case() -> None:
    skipped.add(case.id)
    st.session_state.pop("case_pick", None)
    st.query_params.pop("prediction", None)  # the reviewer's name stays in the address (kept on reload)


left, right = st.columns([3, 2])
with left:
    explain = None if blind_pending else case.predicted_label
    # The file name can give the answer away (e.g. "person138_bacteria_658.jpeg"): hidden in a blind read.
    shown_name = f"Case #{case.id}" if blind_pending else case.file_name
    # One key per case: window / level start from the defaults on every new case.
    show_stored_xray(case.image_path, shown_name, f"review-{case.id}", engine, explain)

with right:
    if case.doubt:
        st.warning(case.doubt)
    if blind_pending:
        st.subheader(f"Case #{case.id}: your read first")
        st.caption(
            "Blind first read: the model's call, probabilities, heat map and other reviewers' calls stay hidden "
            "until you have recorded your own call."
        )
        if identity is None:
            st.info("Type your name to start the blind read.")
            st.stop()
        blind_confidence = st.select_slider("Your confidence", CONFIDENCE, value="high", key="blind_confidence")
        call = None  # one button per row, full width: the label is never cut
        if st.button("NORMAL", shortcut="1", key="blind_normal", width="stretch"):
            call = "NORMAL"
        if st.button("PNEUMONIA", shortcut="2", key="blind_pneumonia", width="stretch"):
            call = "PNEUMONIA"
        if call:
            try:
                reader_study.record_blind_read(engine, case.id, identity, call, blind_confidence)
            except (store.ValidationError, store.StoreUnavailable) as error:
                show_store_error(error)
            else:
                st.rerun()  # reveal the model's output
        st.button("Next case", shortcut="N", key="skip_blind", on_click=_next_case)
        st.stop()

    if case.out_of_domain:
        st.warning(
            f"Out of domain: {OUT_OF_DOMAIN_WARNING} (score {case.domain_score:.2f}). The call below is shown "
            "for reference only; this image stays out of the site figures and calibration unless you confirm "
            "it is a usable chest X-ray."
        )
    st.subheader(f"Case #{case.id}: model says {case.predicted_label}")
    st.write(case.decision)
    st.caption(f"Model {case.model_version} · {case.created_at:%Y-%m-%d %H:%M} UTC")
    if blind_read is not None:
        st.info(
            f"Your unaided call: {blind_read.label} ({blind_read.confidence}), "
            f"{blind_read.created_at:%Y-%m-%d %H:%M} UTC. Keep it or change it now that you see the model's output."
        )
    if case.resolution:
        st.text(case.resolution)  # names and an adjudicator's reason: plain text
    if case.reviews:
        st.write("Earlier reviews")
        superseded = {r.supersedes_id for r in case.reviews}
        user_text_table(
            [
                {
                    "when": r.created_at.strftime("%Y-%m-%d %H:%M"),
                    "reviewer": r.shown_reviewer,
                    "blind call": r.blind_call or "",
                    "verdict": "agrees"
                    if r.agrees
                    else ("not a usable chest X-ray" if r.corrected_label == UNUSABLE else f"says {r.corrected_label}"),
                    "confidence": r.confidence,
                    "notes": r.notes,
                    "superseded": r.id in superseded,
                }
                for r in case.reviews
            ],
            key="earlier_reviews",
        )

    other = "NORMAL" if case.predicted_label == "PNEUMONIA" else "PNEUMONIA"
    start = blind_read.confidence if blind_read is not None else "high"
    # A fresh key per saved review: the browser keeps a text box's typed value until the widget is
    # replaced, so reusing one key could send the last reviewer's notes along with the next review.
    form = st.session_state.setdefault("review_form", 0)
    confidence = st.select_slider("Your confidence", CONFIDENCE, value=start, key=f"confidence-{form}")
    notes = st.text_area("Notes", max_chars=MAX_NOTES, key=f"notes-{form}")
    confirmed = False
    if case.out_of_domain:
        confirmed = st.checkbox("I confirm this is a usable chest X-ray", key=f"domain-confirmed-{form}")
    # One button per row, full width: what a click records is always readable, at any window size.
    agree = st.button(f"Agree: {case.predicted_label}", shortcut="A", key="agree", type="primary", width="stretch")
    disagree = st.button(f"Disagree: {other}", shortcut="D", key="disagree", width="stretch")
    unusable = st.button("Not a usable chest X-ray", shortcut="U", key="unusable", width="stretch")
    st.button("Next case", shortcut="N", key="skip", on_click=_next_case, width="stretch")
    if agree or disagree or unusable:
        try:
            reviews.submit_review(
                engine,
                case.id,
                reviewer,
                bool(agree),
                None if agree else (UNUSABLE if unusable else other),
                confidence,
                notes,
                reviewer_verified=bool(identity and identity.verified),
                blind_read_id=blind_read.id if blind_read is not None else None,
                selection=selection,
                domain_confirmed=confirmed,
            )
        except (store.ValidationError, store.StoreUnavailable) as error:
            show_store_error(error)
        else:
            st.session_state["last_saved"] = f"Review of case #{case.id} saved."
            for key in (f"notes-{form}", f"confidence-{form}", f"domain-confirmed-{form}"):
                st.session_state.pop(key, None)
            st.session_state["review_form"] = form + 1
            st.session_state.pop("case_pick", None)
            st.query_params.pop("prediction", None)  # move on to the next case in the queue
            st.rerun()
