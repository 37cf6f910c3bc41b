"""Feedback & export: review counts, model-vs-reviewer agreement, disagreements, and the relabel CSV."""

from __future__ import annotations

import io

import streamlit as st

from service import export, maintenance, reader_study, store
from ui.common import engine_or_stop, page_header, show_store_error, user_text_table

page_header("Feedback & export")
# The title is drawn before the reader-study statistics are imported (scipy: about 0.8 s on a fresh server).
from ui.mrmc_section import mrmc_section

engine = engine_or_stop()
try:
    view = export.feedback_view(engine)
except store.StoreUnavailable as error:
    show_store_error(error)
    st.stop()
summary = view.summary

cols = st.columns(5)
cols[0].metric("Predictions", summary["predictions"])
cols[1].metric("Reviewed", summary["reviewed_predictions"])
cols[2].metric("Current reviews", summary["reviews"])
cols[3].metric("Disagreements", summary["disagreements"])
cols[4].metric(
    "Kappa",
    "n/a" if summary["kappa"] is None else f"{summary['kappa']:.3f}",
    help="Cohen's kappa between the model and the reviewers",
)
st.caption(
    "Counts use each reviewer's latest review of a case; earlier ones stay in the history "
    f"({summary['all_reviews']} reviews in all). {summary['unusable']} image(s) marked not a usable chest X-ray "
    "by a reviewer: counted here, left out of every figure and training set."
)

if summary["per_reviewer"]:
    st.subheader("Per reviewer")
    user_text_table(
        [{"reviewer": name, **figures} for name, figures in summary["per_reviewer"].items()], key="per_reviewer"
    )

st.subheader("Reader performance")
try:
    readers = reader_study.reader_performance(engine)
    log = maintenance.verify_log(engine, files=False)  # the page walks the log; python -m db verify re-hashes files
except store.StoreUnavailable as error:
    show_store_error(error)
    st.stop()
if readers.rows:
    user_text_table([row.as_dict() for row in readers.rows], key="reader_performance")
    st.caption(
        "Each reader against the adjudicated label (cases they adjudicated themselves left out), else the majority "
        "of the other readers; the model on the same cases. 95 % Wilson intervals. Modes: final = every current "
        "call; unaided = blind first reads; aided = calls made after a blind read, with the model's output shown."
    )
else:
    st.info("Reader performance needs cases read by at least two reviewers, or adjudicated.")
if readers.pairs:
    user_text_table(
        [
            {
                "readers": f"{pair.first} / {pair.second}",
                "shared cases": pair.n,
                "agreement": f"{pair.agreement:.3f}",
                "Cohen's kappa": "n/a" if pair.kappa != pair.kappa else f"{pair.kappa:.3f}",  # NaN: undefined
            }
            for pair in readers.pairs
        ],
        key="pairwise_kappa",
    )
fleiss = readers.fleiss
st.caption(
    "Fleiss' kappa: n/a (needs cases read by the same number of readers, two or more)"
    if fleiss.cases < 2 or fleiss.kappa != fleiss.kappa
    else f"Fleiss' kappa {fleiss.kappa:.3f} over {fleiss.cases} cases read by {fleiss.readers_per_case} readers each"
)

mrmc_section(engine)

st.subheader("Audit log")
if log.ok:
    st.success(log.message())
else:
    st.error(log.message())
st.text("Head hash to keep:")
st.code(log.head_hash, language=None)
st.caption(
    "Keep this hash outside the database (a ticket, an e-mail). Later, `python -m db verify --head HASH` "
    "shows whether entries were cut from the log's end since, and re-hashes every stored image file."
)
st.subheader("Disagreements")
if view.disagreements:
    user_text_table(view.disagreements, key="disagreements")
else:
    st.info("No reviewer disagrees with the model yet.")

st.subheader("Relabel export")
only = st.checkbox("Only images with a disagreement", value=True)
buffer = io.StringIO()
try:
    count = export.write_relabel_export(engine, buffer, only_disagreements=only)
except store.StoreUnavailable as error:
    show_store_error(error)
    st.stop()
st.download_button(f"Download relabel CSV ({count} rows)", buffer.getvalue(), file_name="relabel.csv", mime="text/csv")
st.caption(
    "Feed it to training: `python -m training.train ... --relabel relabel.csv`; "
    "or `python -m db export --output relabel.csv --images-dir DIR` for an ImageFolder tree."
)
