"""Reader study: a named study's unaided and aided sessions, progress per reader, analysis and report."""

from __future__ import annotations

import json

import streamlit as st

from service import reader_studies, store, study_report
from ui.common import current_identity, engine_or_stop, page_header, show_store_error, user_text_table

page_header("Reader study")
# The title is drawn before the viewer is imported (plotly, pandas: about 0.5 s on a fresh server).
from ui.viewer import show_stored_xray

engine = engine_or_stop()
identity = current_identity()

studies = reader_studies.list_studies(engine)
with st.expander("New study", expanded=not studies), st.form("new_study"):
    name = st.text_input("Study name", max_chars=100)
    size = st.number_input("Cases", min_value=4, max_value=2000, value=40, step=1)
    readers = st.text_area("Readers (one name per line)")
    washout = st.number_input("Washout (days)", min_value=0, max_value=365, value=28, step=1)
    reference = st.selectbox(
        "Reference standard", reader_studies.REFERENCES, help="adjudicated: only adjudicated cases"
    )
    if st.form_submit_button("Create study (freezes the cases)", width="stretch"):
        try:
            made = reader_studies.create_study(
                engine,
                name,
                int(size),
                readers.splitlines(),
                identity.name if identity else "",
                int(washout),
                reference,
            )
        except (store.ValidationError, store.StoreUnavailable) as error:
            show_store_error(error)
        else:
            st.success(f"Study created: {made.cases} cases ({made.normal} NORMAL, {made.pneumonia} PNEUMONIA).")
            studies = reader_studies.list_studies(engine)

if not studies:
    st.info("No reader study yet.")
    st.stop()
chosen = st.selectbox("Study", [s.name for s in studies], key="study")
study = next(s for s in studies if s.name == chosen)
st.caption(
    f"{study.cases} cases ({study.normal} NORMAL / {study.pneumonia} PNEUMONIA), reference: {study.reference}, "
    f"washout {study.washout_days} days, made {study.created_at:%Y-%m-%d}"
)
st.text("Readers: " + ", ".join(study.readers) + f" · made by {study.created_by}")  # names: plain text

st.subheader("Progress")
user_text_table(
    [
        {
            "reader": p.reader,
            "unaided": f"{p.unaided} / {p.cases}",
            "aided": f"{p.aided} / {p.cases}",
            "washout ends": "" if p.washout_ends is None else f"{p.washout_ends:%Y-%m-%d %H:%M} UTC",
            "overrides": p.overrides,
        }
        for p in reader_studies.progress(engine, study.name)
    ],
    key="study_progress",
)

if identity is not None and identity.name in study.readers:
    step = reader_studies.next_read(engine, study.name, identity.name)
    st.subheader(f"Your reading: {step.done} of {step.total} reads done")
    if step.case is None:
        st.success("You have read every case in both sessions.")
    else:
        case = step.case
        aided = step.modality == "aided"
        override = ""
        if step.washout_ends is not None:
            st.warning(
                f"The aided session opens after the washout, on {step.washout_ends:%Y-%m-%d %H:%M} UTC. "
                "Reading before then needs a reason, which is logged."
            )
            override = st.text_input("Reason to read before the washout ends", key="washout_reason")
        left, right = st.columns([3, 2])
        with left:
            # The unaided session shows the image only: no call, probability, heat map or file name.
            show_stored_xray(
                case.image_path,
                f"Case {case.position + 1}",
                f"study-{case.case_id}-{step.modality}",
                engine,
                case.predicted_label if aided else None,
            )
        with right:
            st.write(f"Session: {'aided (with the AI)' if aided else 'unaided (image only)'}")
            if aided:
                st.write(
                    f"AI: {case.predicted_label} (P(PNEUMONIA) {case.p_pneumonia:.3f}, threshold {case.threshold:.3f})"
                )
            rating = st.radio(
                "How likely is pneumonia?",
                list(reader_studies.RATINGS),
                format_func=lambda k: f"{k}: {reader_studies.RATINGS[k]}",
                index=None,
                key=f"rating-{case.case_id}-{step.modality}",
            )
            if st.button("Record read", type="primary", key="record_read", width="stretch", disabled=rating is None):
                try:
                    reader_studies.record_read(
                        engine,
                        study.name,
                        identity.name,
                        case.case_id,
                        step.modality or "unaided",
                        int(rating or 0),
                        override,
                    )
                except (store.ValidationError, store.StoreUnavailable) as error:
                    show_store_error(error)
                else:
                    st.rerun()
elif identity is not None:
    st.info("You are not a reader of this study; its readers are listed above.")

st.subheader("Analysis")
try:
    report = study_report.build_report(engine, study.name)
except store.ValidationError as error:
    st.info(str(error))
else:
    for comparison in report["results"]["auc"]["comparisons"]:
        low, high = comparison["ci"]
        st.write(
            f"{comparison['method']}: AUC {' - '.join(comparison['modalities'])} = {comparison['difference']:+.4f} "
            f"(95 % CI {low:+.4f} to {high:+.4f}, p = {comparison['p_value']:.4f})"
        )
    for endpoint, result in report["results"].items():
        if "not_testable" in result:
            st.caption(f"{endpoint.capitalize()} at the readers' calls: not testable ({result['not_testable']}).")
    st.caption(f"AI alone on the same cases: AUC {report['ai_auc']:.4f}")
    cols = st.columns(3)
    cols[0].download_button(
        "Report (Markdown)", study_report.report_markdown(report), f"{study.name}.md", width="stretch"
    )
    cols[1].download_button("Report (HTML)", study_report.report_html(report), f"{study.name}.html", width="stretch")
    cols[2].download_button("Report (JSON)", json.dumps(report, indent=1), f"{study.name}.json", width="stretch")
