"""Metrics: the held-out report, this site's reviewed cases, a live threshold, calibration, other folders."""

from __future__ import annotations

import streamlit as st

from ui.common import engine_or_stop, load_report, page_header, predictor_or_stop

page_header("Model performance on held-out patients")
# The title is drawn before the sections are imported (pandas, plotly: about 0.5 s on a fresh server).
from service.evaluation import report_beside
from ui.monitor_section import monitoring_section
from ui.report_view import (
    DATA_CARD,
    evaluate_folder_section,
    render_report,
    report_in_force,
    robustness_section,
    save_threshold_form,
)
from ui.site_sections import point_change_section, restore_section, reviewed_cases_section, site_proposal_section
from ui.versions_section import versions_section

engine = engine_or_stop()
predictor = predictor_or_stop(engine)
st.caption(
    f"Model `{predictor.version}` · {predictor.point.describe()} · threshold goal `{predictor.point.goal or 'n/a'}`"
)
st.markdown(DATA_CARD)
report_path = report_beside(predictor.checkpoint_path)
report = load_report(report_path)
if report is None:
    st.warning(
        "No evaluation report next to the checkpoint. Create one with "
        "`python -m training.evaluate --checkpoint models/best_model.pth --data-dir DIR "
        "--output models/best_model.json`."
    )
else:
    stored = report
    report = report_in_force(report, predictor, report_path)
    chosen = render_report(report, predictor.threshold, "shipped")
    point_change_section(stored, predictor)
    save_threshold_form(engine, predictor, report, chosen)
    robustness_section(stored)
reviewed_cases_section(engine, predictor, report)
monitoring_section(engine, predictor)
site_proposal_section(engine, predictor)
restore_section(engine, predictor)
versions_section(engine, predictor)
evaluate_folder_section(predictor)
