"""Dashboard router: ``streamlit run streamlit_app.py`` (or ``make run``)."""

import streamlit as st

st.set_page_config(page_title="Pneumonia X-ray review", page_icon=":material/radiology:", layout="wide")

PAGES = [
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:", url_path="metrics", default=True),
    st.Page("pages/predict.py", title="Predict", icon=":material/upload_file:", url_path="predict"),
    st.Page("pages/review.py", title="Review", icon=":material/rate_review:", url_path="review"),
    st.Page("pages/feedback.py", title="Feedback & export", icon=":material/download:", url_path="feedback"),
]

st.navigation(PAGES).run()
