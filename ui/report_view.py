"""The Metrics page's report views: figures with intervals, a live threshold, calibration, robustness, other folders."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from core.metrics import confusion_rates
from service import evaluation, known_models, store
from ui.charts import confusion_figure, reliability_figure, roc_figure
from ui.common import show_problem, show_store_error

if TYPE_CHECKING:
    from core.inference import Predictor


DATA_CARD = """
**Data card.** Pediatric chest X-rays (ages 1-5) from a single centre (Guangzhou Women and
Children's Medical Center; Kermany et al., Cell 2018), resized to 224 x 224. The model was
trained on a patient-grouped split of the public training images; this report is on the
held-out **test** part of that split: patients the model never saw in training or model
selection. It is **not** validated on adults, other hospitals, portable/ICU films, or lateral
views, and it is a review aid, not a diagnosis.
"""


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _with_ci(report: dict[str, Any], key: str, value: float | None = None) -> str:
    value = report.get(key) if value is None else value
    ci = report.get("confidence_intervals", {}).get(key)
    return f"{_fmt(value)} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else _fmt(value)


def render_report(report: dict[str, Any], threshold: float, key: str) -> float:
    """Draw a report; returns the threshold chosen on the slider."""
    predictions = report.get("predictions", [])
    labels = [p["label"] for p in predictions]
    scores = [p["p_pneumonia"] for p in predictions]
    # Short labels and bare values: an interval inside a metric was cut at every window size. The
    # intervals follow in the caption, each beside its figure's name.
    names = {"accuracy": "Accuracy", "roc_auc": "ROC-AUC", "sensitivity": "Sensitivity", "specificity": "Specificity"}
    headline = st.columns(len(names) + 1)
    for column, (key_name, shown) in zip(headline, names.items(), strict=False):
        column.metric(shown, _fmt(report.get(key_name)))
    headline[-1].metric("Images", str(report.get("n_images", len(predictions))))
    intervals = report.get("confidence_intervals", {})
    spans = [f"{shown} {intervals[k][0]:.3f}-{intervals[k][1]:.3f}" for k, shown in names.items() if intervals.get(k)]
    st.caption(
        f"At the report's threshold {report['threshold']:.3f}; {report.get('n_images', len(predictions))} images "
        f"of {report.get('n_patients', '?')} patients. "
        + (f"Bootstrap 95 % intervals: {' · '.join(spans)}." if spans else "No intervals in this report.")
    )
    per_class = pd.DataFrame(report["per_class"]).T[["precision", "recall", "f1", "support"]]
    three = "{:.3f}"
    st.dataframe(per_class.style.format({"precision": three, "recall": three, "f1": three, "support": "{:.0f}"}))

    st.subheader("Operating point")
    left, right = st.columns(2)
    chosen = left.slider(
        "Decision threshold on P(PNEUMONIA)",
        0.0,
        1.0,
        float(round(threshold, 3)),
        0.001,
        format="%.3f",
        key=f"{key}_threshold",
    )
    prevalence = right.number_input(
        "Pneumonia prevalence for PPV/NPV (%)",
        0.1,
        99.9,
        float(round(100 * sum(labels) / max(len(labels), 1), 1)),
        0.5,
        key=f"{key}_prevalence",
    )
    point = confusion_rates(labels, scores, chosen, prevalence / 100)
    cols = st.columns(4)
    for col, name in zip(cols, ("sensitivity", "specificity", "ppv", "npv"), strict=True):
        col.metric(name.upper() if len(name) == 3 else name.capitalize(), _fmt(point[name]))
    left, right = st.columns(2)
    left.plotly_chart(confusion_figure(point["confusion_matrix"]), key=f"{key}_cm")
    roc = report.get("roc_curve")
    if roc:
        right.plotly_chart(
            roc_figure(
                roc["fpr"],
                roc["tpr"],
                roc["thresholds"],
                report.get("roc_auc"),
                (1 - point["specificity"], point["sensitivity"]),
            ),
            key=f"{key}_roc",
        )

    st.subheader("Calibration")
    raw = [p.get("p_pneumonia_uncalibrated", p["p_pneumonia"]) for p in predictions]
    cols = st.columns(4)
    cols[0].metric("ECE before", _fmt(report.get("ece_uncalibrated")))
    cols[1].metric("ECE after", _fmt(report.get("ece")), help="after temperature scaling")
    cols[2].metric("Brier before", _fmt(report.get("brier_uncalibrated")))
    cols[3].metric("Brier after", _fmt(report.get("brier")))
    st.plotly_chart(reliability_figure(labels, {"before": raw, "after": scores}), key=f"{key}_rel")
    return chosen


def robustness_section(report: dict[str, Any]) -> None:
    """Figures under site-like perturbations, from the stored report (``training.evaluate --stress``)."""
    st.subheader("Robustness")
    stress = report.get("stress")
    if not stress:
        st.info("This report has no stress tests. Add them with `python -m training.evaluate ... --stress`.")
        return
    st.caption(
        f"The held-out images under named perturbations (core.shifts) at the report's own operating point "
        f"(threshold {report['threshold']:.3f}); in brackets the change from the clean figure."
    )
    rows = {}
    for name, figures in stress.items():
        row = {}
        for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "ece"):
            drop = figures["drop"].get(key)
            row[key] = f"{_fmt(figures.get(key))} ({'n/a' if drop is None else f'{round(-drop, 3) + 0.0:+.3f}'})"
        rows[name] = row
    st.dataframe(pd.DataFrame(rows).T.rename(columns={"roc_auc": "ROC-AUC", "ece": "ECE"}), key="robustness")


def report_in_force(report: dict[str, Any], predictor: Predictor, report_path: Path) -> dict[str, Any]:
    """The stored report re-scored at the calibration in force (a saved site calibration changes it)."""
    mtime = report_path.stat().st_mtime_ns if report_path.exists() else 0
    return _rescored(str(report_path), mtime, predictor.point.to_dict(), report, predictor)


@st.cache_data(show_spinner=False, max_entries=8)
def _rescored(
    path: str, mtime: int, point: dict[str, Any], _report: dict[str, Any], _predictor: Predictor
) -> dict[str, Any]:
    """The rescored report (bootstrap included), once per report file and operating point, not on every rerun."""
    return evaluation.report_at_point_in_force(_report, _predictor)


def save_threshold_form(engine: Any, predictor: Predictor, report: dict[str, Any], chosen: float) -> None:
    """Threshold governance: who saved which operating point, when, with its metrics."""
    with st.form("save_threshold"):
        st.write(
            f"Save **{chosen:.3f}** as the operating point for `{predictor.version}` "
            "(the calibration in force is kept)."
        )
        name = st.text_input("Your name", value=st.session_state.get("reviewer_name", ""), max_chars=100)
        reason = st.text_area("Reason", max_chars=2000)
        if st.form_submit_button("Save threshold"):
            labels = [p["label"] for p in report["predictions"]]
            scores = [p["p_pneumonia"] for p in report["predictions"]]
            metrics = confusion_rates(labels, scores, chosen)
            point = dataclasses.replace(predictor.point, threshold=chosen, goal="manual")  # calibration kept
            try:
                known_models.save_operating_point(engine, predictor, point, name, metrics, reason)
                st.success(f"Threshold {chosen:.3f} saved; new predictions use it.")
            except (store.ValidationError, store.StoreUnavailable) as error:
                show_store_error(error)


def evaluate_folder_section(predictor: Predictor) -> None:
    """Evaluate the model on another labelled folder, with a progress bar."""
    with st.expander("Evaluate on another labelled folder"):
        st.caption(
            "Folders under: "
            + ", ".join(str(root) for root in evaluation.evaluation_roots())
            + " (setting PNEUMONIA_EVAL_ROOTS)."
        )
        folder = st.text_input("Folder with NORMAL/ and PNEUMONIA/ sub-folders", key="eval_folder").strip()
        if st.button("Evaluate", disabled=not folder):
            bar = st.progress(0.0, text="Scoring images…")
            try:
                result = evaluation.evaluate_folder(
                    predictor,
                    folder,
                    progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total} images"),
                )
            except (FileNotFoundError, ValueError, OSError) as error:
                show_problem("Could not evaluate that folder.", str(error))
                return
            if result.errors:
                st.warning(f"Skipped {len(result.errors)} unreadable image(s):")
                st.text("\n".join(result.errors[:20]))
            if result.report is None:
                st.error("No readable images in that folder.")
                return
            st.session_state["folder_report"] = result.report
        if st.session_state.get("folder_report"):
            report = st.session_state["folder_report"]
            st.text(f"Report for {report['data_dir']}")
            render_report(report, predictor.threshold, "folder")
