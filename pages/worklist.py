"""Worklist: studies pulled from the PACS, PNEUMONIA first, with their review links and what was pushed back."""

from __future__ import annotations

import streamlit as st

from pacs.client import PacsClient, PacsError, settings_url
from service import pacs_store, store
from ui.common import engine_or_stop, page_header, predictor_or_stop, show_problem

page_header("Worklist")
engine = engine_or_stop()
url = settings_url()
st.caption(f"PACS: {url}" if url else "No PACS configured: set DICOMWEB_URL to its DICOMweb root (see README, PACS).")

if url and st.button("Pull new studies from the PACS", type="primary", key="pull", width="stretch"):
    from pacs.pull import pull

    try:
        with st.spinner("Pulling, predicting and pushing results..."):
            report = pull(engine, PacsClient(url), predictor_or_stop(engine))
    except (PacsError, store.StoreUnavailable) as error:
        show_problem("Could not pull from the PACS.", str(error))
    else:
        st.success(
            f"Logged {len(report.logged)} new prediction(s), skipped {report.skipped} already logged, refused "
            f"{len(report.refused)}; pushed {report.pushed} result(s) and {report.reviews_pushed} review SR(s)."
        )
        for line in report.refused + report.push_errors:
            st.text(line)  # one line each, plain text

rows = pacs_store.worklist(engine)
if not rows:
    st.info("Nothing pulled from the PACS yet.")
    st.stop()
st.caption(f"{len(rows)} instance(s), PNEUMONIA first, most probable first.")
for row in rows:
    left, right = st.columns([3, 1])
    with left:
        flag = " · out of domain" if row.out_of_domain else ""
        st.write(f"**{row.label}** · P(PNEUMONIA) {row.p_pneumonia:.3f} (threshold {row.threshold:.3f}){flag}")
        st.text(  # the study UID comes from the PACS: plain text
            f"Study {row.study_uid} · {row.reviews} review(s) · "
            f"{'result in the PACS' if row.pushed else 'result not pushed yet'}"
        )
    with right:
        st.page_link(
            "pages/review.py",
            label=f"Review #{row.prediction_id}",
            icon=":material/rate_review:",
            query_params={"prediction": str(row.prediction_id)},
        )
if url and st.button("Push review SRs to the PACS", key="push_reviews", width="stretch"):
    from pacs.pull import push_reviews

    try:
        st.success(f"Pushed {push_reviews(engine, PacsClient(url))} review SR(s).")
    except (PacsError, store.StoreUnavailable) as error:
        show_problem("Could not push to the PACS.", str(error))
