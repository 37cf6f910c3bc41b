"""Metrics page section: model versions side by side, promotion and one-click rollback (all logged)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from core.checkpoint import CheckpointError
from core.registry import CheckpointInfo, list_checkpoints, models_dir
from service import comparison, known_models, model_versions, store
from service.store import Store
from ui.charts import roc_overlay_figure
from ui.common import get_predictor, show_problem, show_store_error
from ui.site_sections import figures_table

if TYPE_CHECKING:
    from core.inference import Predictor


def _report(info: CheckpointInfo) -> dict[str, Any] | None:
    if info.report_path is None:
        return None
    try:
        return json.loads(info.report_path.read_text())
    except (OSError, ValueError):
        return None


def _difference(figures: dict[str, Any], key: str) -> str:
    entry = figures["difference_b_minus_a"][key]
    if entry["difference"] is None:
        return "n/a"
    ci = entry["ci"]
    return f"{entry['difference']:+.3f}" + (f" ({ci[0]:+.3f} to {ci[1]:+.3f})" if ci else "")


def _comparison(title: str, figures: dict[str, Any], names: tuple[str, str], key: str) -> None:
    st.markdown(f"**{title}** ({figures.get('n', 0)} cases)")
    if not figures.get("n"):
        st.info("No cases shared by both versions here.")
        return
    st.dataframe(figures_table({names[0]: figures["a"], names[1]: figures["b"]}), key=f"{key}_table")
    st.write(
        f"Paired difference B - A: accuracy {_difference(figures, 'accuracy')}, "
        f"ROC-AUC {_difference(figures, 'roc_auc')} (bootstrap 95 %)"
    )
    curves = {name: side["roc"] for name, side in zip(names, (figures["a"], figures["b"]), strict=True) if side["roc"]}
    if curves:
        st.plotly_chart(roc_overlay_figure(curves), key=f"{key}_roc")


def _folder_state(folder: Path) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """The models folder and each checkpoint's (name, size, mtime): the cache key of :func:`_registered`."""
    files = sorted({*folder.glob("*.pth"), *folder.glob("*/best_model.pth")}) if folder.is_dir() else []
    return str(folder), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


@st.cache_data(show_spinner=False, max_entries=8)
def _registered(state: tuple[str, tuple[tuple[str, int, int], ...]]) -> list[CheckpointInfo]:
    """The registered checkpoints, read and hashed again only when a file in the folder changes."""
    return list_checkpoints(state[0])


def versions_section(engine: Store, in_use: Predictor) -> None:
    """Compare two registered checkpoints; promote one or roll back."""
    st.subheader("Model versions")
    candidates = _registered(_folder_state(models_dir()))
    st.caption(
        f"Registered: the checkpoints in {models_dir()} (set PNEUMONIA_MODELS_DIR for another folder). "
        f"In use: `{in_use.version}`."
    )
    if not candidates:
        st.info("No checkpoints in the models folder.")
        return
    labels = {f"{c.version} · {c.path.name}": c for c in candidates}
    names = list(labels)
    in_use_index = next((i for i, c in enumerate(candidates) if c.sha256 == in_use.checkpoint_sha256), 0)
    left, right = st.columns(2)
    first = left.selectbox("Version A", names, index=in_use_index, key="version_a")
    second = right.selectbox("Version B", names, index=(in_use_index + 1) % len(names), key="version_b")
    if st.button("Compare", key="compare_versions", disabled=first == second):
        try:
            a, b = (
                known_models.predictor_in_force(engine, get_predictor(str(labels[n].path))) for n in (first, second)
            )
            st.session_state["version_comparison"] = {
                "pair": (labels[first].sha256, labels[second].sha256),
                "names": (first.split(" · ")[0] + " (A)", second.split(" · ")[0] + " (B)"),
                "reviewed": comparison.compare_on_reviewed(engine, a, b, bootstrap=300),
                "heldout": comparison.compare_on_reports(
                    a, _report(labels[first]) or {}, b, _report(labels[second]) or {}, bootstrap=300
                ),
            }
        except CheckpointError as error:
            show_problem("The model could not be loaded.", str(error))
        except store.StoreUnavailable as error:
            show_store_error(error)
    result = st.session_state.get("version_comparison")
    if result:
        _comparison("Held-out reviewed cases (never trained on)", result["reviewed"], result["names"], "cmp_rev")
        _comparison("Held-out split (images both reports share)", result["heldout"], result["names"], "cmp_split")
    compared = result is not None and result.get("pair") == (in_use.checkpoint_sha256, labels[second].sha256)
    _promotion_forms(engine, labels, second, result["reviewed"] if compared and result else None)
    _history_and_rollback(engine)


def _promotion_forms(
    engine: Store, labels: dict[str, CheckpointInfo], chosen: str, reviewed: dict[str, Any] | None
) -> None:
    """Promotion is offered after a paired comparison of B with the version in use (A) on held-out reviewed cases.

    When that comparison cannot support it (too few cases, or B worse with confidence), promoting
    needs an explicit override, logged with its reason.
    """
    version = chosen.split(" · ")[0]
    if reviewed is None:
        st.info(
            f"To promote `{version}`, compare it first (version A: the one in use, version B: `{version}`); "
            "promotion is offered after a paired comparison on held-out reviewed cases."
        )
        return
    offered, why = comparison.promotion_verdict(reviewed)
    if not offered:
        st.warning(f"Promotion {why}.")
    with st.form("promote_version"):
        st.write(f"Promote version B: the dashboard and the command lines will use `{version}`.")
        name = st.text_input(
            "Your name", value=st.session_state.get("reviewer_name", ""), max_chars=100, key="promote_name"
        )
        reason = st.text_area("Reason", max_chars=2000, key="promote_reason")
        override = False
        if not offered:
            override = st.checkbox("Promote anyway (override: logged with the reason)", key="promote_override")
        promote = st.form_submit_button("Promote")
    if promote:
        if not offered and not override:
            show_problem("Not promoted.", f"Promotion {why}; tick the override to promote anyway.")
        elif not reason.strip():
            show_problem("Not promoted.", "A reason is required.")
        else:
            try:
                logged = reason.strip() if offered else f"OVERRIDE ({why}): {reason.strip()}"
                done = model_versions.promote(engine, labels[chosen].path, name, logged)
            except (store.ValidationError, store.StoreUnavailable, CheckpointError) as error:
                show_store_error(error)
            else:
                st.success(f"{done.version} promoted; it is in use from now on.")
                st.session_state.pop("version_comparison", None)


def _history_and_rollback(engine: Store) -> None:
    """Every promotion, newest first, and rolling back to the previous version."""
    try:
        history = model_versions.promotion_history(engine)
    except store.StoreUnavailable as error:
        show_store_error(error)
        return
    if history:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "when": p.created_at.strftime("%Y-%m-%d %H:%M"),
                        "version": p.version,
                        "by": p.promoted_by,
                        "reason": p.reason,
                        "checkpoint": p.checkpoint_path,
                    }
                    for p in history
                ]
            ),
            hide_index=True,
        )
        with st.form("rollback_version"):
            who = st.text_input(
                "Your name", value=st.session_state.get("reviewer_name", ""), max_chars=100, key="rollback_name"
            )
            back = st.form_submit_button("Roll back to the previous version")
        if back:
            try:
                done = model_versions.rollback(engine, who)
            except (store.ValidationError, store.StoreUnavailable, CheckpointError) as error:
                show_store_error(error)
            else:
                st.success(f"Rolled back: {done.version} is in use.")
