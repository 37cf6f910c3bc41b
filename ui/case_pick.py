"""Which case the Review page shows next: the most uncertain, or now and then one drawn at random (audit).

Queue-chosen cases are the most uncertain ones: a biased sample that site figures and calibration must
not rest on. Every ``1 / PNEUMONIA_AUDIT_FRACTION``-th pick is drawn at random instead, and each review
records how its case was chosen. The pick is kept across reruns until the case is reviewed or skipped.
"""

from __future__ import annotations

import streamlit as st

from service import reviews, store
from service.reviews import CaseView, QueueFilters
from service.store import Store


def pick_case(engine: Store, filters: QueueFilters, queue: list[CaseView], skipped: set[int]) -> tuple[CaseView, str]:
    """The case to show and how it was chosen (``"queue"`` or ``"audit"``)."""
    kept = st.session_state.get("case_pick")
    if kept is not None and kept["filters"] == repr(filters):  # changed filters: a new pick
        try:
            return reviews.load_case(engine, kept["id"]), kept["selection"]
        except store.ValidationError:
            pass
    st.session_state.pop("case_pick", None)
    picks = st.session_state.get("case_picks", 0) + 1
    st.session_state["case_picks"] = picks
    fraction = reviews.audit_fraction()
    case, selection = None, "queue"
    if fraction > 0 and picks % max(1, round(1 / fraction)) == 0:
        case, selection = reviews.load_audit_case(engine, filters), "audit"
    if case is None:
        waiting = [c for c in queue if c.id not in skipped] or queue  # all skipped: start over
        case, selection = waiting[0], "queue"
    st.session_state["case_pick"] = {"id": case.id, "selection": selection, "filters": repr(filters)}
    return case, selection
