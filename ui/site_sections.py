"""Metrics page sections for site adaptation: figures on reviewed cases, and proposing a site operating point."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from core.operating_point import DATABASE, checkpoint_operating_point
from core.site_adaptation import (
    DEFAULT_MIN_PER_CLASS,
    FIGURES,
    NotEnoughCases,
    figures_at,
    goal_misses,
    shift_warnings,
)
from service import reviews, site, store
from service.site import restore_point, saved_points
from service.store import Store
from ui.common import show_store_error

if TYPE_CHECKING:
    from core.inference import Predictor

GOALS = [
    "sensitivity>=0.95@0.90",
    "sensitivity>=0.90@0.90",
    "sensitivity>=0.95",
    "sensitivity>=0.97",
    "sensitivity>=0.90",
    "youden",
]
"""Goals with ``@`` hold with that confidence (exact lower bound on the reviewed cases), not only on them;
the first is the default."""


def _cell(figures: dict[str, Any], name: str) -> str:
    value = figures.get(name)
    if value is None:
        return "n/a"
    ci = figures.get("confidence_intervals", {}).get(name)
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{value:.3f}"


def figures_table(columns: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per figure, one column per set of figures, values with their 95 % intervals."""
    rows = {
        name.replace("roc_auc", "ROC-AUC").replace("ece", "ECE"): {k: _cell(v, name) for k, v in columns.items()}
        for name in FIGURES
    }
    for name in ("sensitivity", "specificity"):  # one-sided exact lower bounds: what the cases can show
        rows[f"{name}, lower bound"] = {
            k: "n/a"
            if v.get(f"{name}_lower") is None
            else f"{v[f'{name}_lower']:.3f} ({v.get('bound_confidence', 0.9):.0%} one-sided)"
            for k, v in columns.items()
        }
    counts = {
        k: f"{v.get('n', 0)} ({v.get('n_normal', 0)} NORMAL / {v.get('n_pneumonia', 0)} PNEUMONIA)"
        for k, v in columns.items()
    }
    return pd.DataFrame({"cases": counts, **rows}).T


@st.cache_data(show_spinner="Scoring reviewed cases…", max_entries=16)
def _site_figures(
    store_url: str,
    sha256: str,
    point: dict[str, Any],
    fingerprint: tuple[int, int, int],
    _engine: Store,
    _predictor: Predictor,
) -> dict[str, Any]:
    """Site figures, recomputed only when the store, model, operating point or reviews change (not every rerun).

    Every widget on the Metrics page reruns it; without the cache each rerun re-read and re-scored every
    reviewed image.
    """
    return site.site_performance(_engine, _predictor, bootstrap=300)


def reviewed_cases_section(engine: Store, predictor: Predictor, heldout: dict[str, Any] | None) -> None:
    """How the model does on this site's reviewed cases, at the operating point in force."""
    st.subheader("On reviewed cases")
    st.caption(
        "Ground truth: the reviewers' resolved label (majority of each reviewer's latest call; ties left "
        f"out). Model `{predictor.version}` at the operating point in force; bootstrap 95 % intervals."
    )
    try:
        figures = _site_figures(
            str(engine.url),
            predictor.checkpoint_sha256,
            predictor.point.to_dict(),
            reviews.reviews_fingerprint(engine),
            engine,
            predictor,
        )
    except store.StoreUnavailable as error:
        show_store_error(error)
        return
    if figures.get("sample"):
        st.caption(f"Used: {figures['sample']}.")
    if not figures["n"]:
        st.info("No resolved reviewed cases for this model version yet. Review predictions on the Review page.")
        return
    columns = {"reviewed cases": figures}
    if heldout:
        columns["held-out split"] = {
            **heldout,
            "n": heldout.get("n_images", 0),
            "n_normal": heldout.get("per_class", {}).get("NORMAL", {}).get("support", 0),
            "n_pneumonia": heldout.get("per_class", {}).get("PNEUMONIA", {}).get("support", 0),
        }
    st.dataframe(figures_table(columns), key="site_figures")
    for line in shift_warnings(figures, heldout or {}):
        st.warning(f"Differs beyond the interval: {line}")


def site_proposal_section(engine: Store, predictor: Predictor) -> None:
    """Fit calibration and threshold on the reviewed cases, preview the figures, then save (logged)."""
    with st.expander("Propose a site operating point"):
        left, right = st.columns(2)
        goal = left.selectbox("Goal", GOALS, key="site_goal")
        minimum = right.number_input("Minimum resolved cases per class", 5, 1000, DEFAULT_MIN_PER_CLASS, key="site_min")
        if st.button("Preview", key="site_preview"):
            try:
                st.session_state["site_proposal"] = site.propose(engine, predictor, goal, int(minimum), 300)
            except NotEnoughCases as error:
                st.session_state.pop("site_proposal", None)
                st.error(str(error))
            except store.StoreUnavailable as error:
                show_store_error(error)
        stored = st.session_state.get("site_proposal")
        if not stored:
            return
        proposal, scores = stored
        point = proposal.point
        st.write(f"Proposed: {point.describe()} for `{point.goal}`, fitted on {len(scores.cases)} reviewed cases.")
        st.dataframe(
            figures_table({"in force now": proposal.before, "proposed (cross-validated)": proposal.after}),
            key="site_preview_table",
        )
        st.caption("'Proposed' figures are cross-validated: each case is scored by a calibration fitted without it.")
        problems = proposal.problems()
        for problem in problems:
            st.warning(f"Speaks against saving: {problem}.")
        with st.form("save_site_point"):
            name = st.text_input(
                "Your name", value=st.session_state.get("reviewer_name", ""), max_chars=100, key="site_name"
            )
            reason = st.text_area("Reason (required)", max_chars=2000, key="site_reason")
            override = (
                st.checkbox("Save anyway (an override: recorded with the change)", key="site_override")
                if problems
                else False
            )
            if st.form_submit_button("Save site operating point"):
                try:
                    change = site.save_proposal(engine, predictor, proposal, scores, name, reason, override)
                except (store.ValidationError, store.StoreUnavailable) as error:
                    show_store_error(error)
                else:
                    st.session_state.pop("site_proposal", None)
                    st.success(f"Site operating point saved (change #{change}); new predictions use it.")


def restore_section(engine: Store, predictor: Predictor) -> None:
    """Put the checkpoint's own operating point, or an earlier saved one, back in force: one logged change."""
    if predictor.point.origin != DATABASE:
        return
    with st.expander("Restore an earlier operating point"):
        st.caption(f"In force now: {predictor.point.describe()} for {predictor.point.goal}.")
        try:
            earlier = saved_points(engine, predictor)[1:]  # the newest is the one in force
        except store.StoreUnavailable as error:
            show_store_error(error)
            return
        choices: dict[str, int | None] = {"the checkpoint's own point": None}
        choices.update({f"#{i}: threshold {p.threshold:.3f} ({p.goal or 'no goal'})": i for i, p in earlier})
        with st.form("restore_point"):
            chosen = st.selectbox("Point", list(choices), key="restore_choice")
            name = st.text_input(
                "Your name", value=st.session_state.get("reviewer_name", ""), max_chars=100, key="restore_name"
            )
            reason = st.text_area("Reason (required)", max_chars=2000, key="restore_reason")
            if st.form_submit_button("Restore this point"):
                try:
                    change = restore_point(engine, predictor, name, reason, choices[chosen])
                except (store.ValidationError, store.StoreUnavailable) as error:
                    show_store_error(error)
                else:
                    st.success(f"Restored {chosen}: in force again (change #{change}).")


def point_change_section(report: dict[str, Any], predictor: Predictor) -> None:
    """With a saved point in force: the held-out split at the checkpoint's point beside the one in force,
    and a warning for each goal no longer met there."""
    predictions = report.get("predictions", [])
    if predictor.point.origin != DATABASE or not predictions or "logit_margin" not in predictions[0]:
        return
    st.subheader("Held-out split: the checkpoint's point and the one in force")
    before = figures_at(checkpoint_operating_point(predictor.meta), predictions)
    after = figures_at(predictor.point, predictions)
    st.dataframe(
        figures_table({"checkpoint's point": before, "in force (saved)": after}).drop(index=["ROC-AUC", "ECE"]),
        key="point_change_table",
    )
    goals = {predictor.meta.threshold_goal, predictor.point.goal}
    for line in [miss for goal in sorted(goals) for miss in goal_misses(goal, after)]:
        st.warning(f"On the held-out split at the point in force, {line}.")
