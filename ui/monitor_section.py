"""The Metrics page's site-monitoring section: windows of unreviewed predictions against the held-out images."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from service import monitoring

if TYPE_CHECKING:
    from core.inference import Predictor
    from service.store import Store

WINDOWS = {"7 days": "7d", "1 day": "1d", "30 days": "30d"}


def monitoring_section(engine: Store, predictor: Predictor) -> None:
    """Per window: count, share out of domain, share PNEUMONIA, mean P, drift, estimated rates, and alarms."""
    st.header("Site monitoring (no labels needed)")
    if not predictor.meta.domain:
        st.info("This model has no reference statistics to monitor against; fit them with `python -m training.domain`.")
        return
    choice = st.segmented_control("Window", list(WINDOWS), default="7 days", key="monitor_window")
    window = monitoring.parse_window(WINDOWS[choice or "7 days"])
    try:
        report = monitoring.monitor(engine, predictor.meta, predictor.checkpoint_sha256, predictor.point, window)
    except ValueError as error:
        st.info(str(error))
        return
    ref = report.reference
    st.caption(
        f"Reference: the model's {ref['images']} validation images at the operating point in force: "
        f"{ref['flagged_share']:.1%} out of domain, {ref['pneumonia_share']:.1%} called PNEUMONIA, mean P(PNEUMONIA) "
        f"{ref['mean_p']:.3f}. Each figure is tested at level {monitoring.ALARM_LEVEL} in windows of at least "
        f"{monitoring.MIN_WINDOW} predictions. Sensitivity and specificity are estimates from calibrated "
        "probabilities (they assume the calibration holds), not measurements."
    )
    if not report.windows:
        st.info(f"No predictions by {report.model} yet.")
        return
    for alarm in report.alarms:
        st.warning(f"Alarm: {alarm['alarm']}. Recommended: {alarm['recommendation']}.")
    if not report.alarms:
        st.success("No alarms in any window.")
    rows = []
    for w in reversed(report.windows):
        sens, spec = w.estimated_sensitivity, w.estimated_specificity
        rows.append(
            {
                "window from": f"{w.start:%Y-%m-%d %H:%M}",
                "predictions": w.count,
                "out of domain": f"{w.flagged_share:.1%}",
                "PNEUMONIA": f"{w.pneumonia_share:.1%}",
                "mean P": f"{w.mean_p:.3f}",
                "drift (KS)": "" if w.drift_ks is None else f"{w.drift_ks:.2f}",
                "est. sensitivity": "" if sens is None else f"{sens[0]:.3f} ({sens[1]:.3f}-{sens[2]:.3f})",
                "est. specificity": "" if spec is None else f"{spec[0]:.3f} ({spec[1]:.3f}-{spec[2]:.3f})",
                "alarms": str(len(w.alarms)) if w.tested else "too few to test",
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")
