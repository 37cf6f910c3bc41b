"""Dashboard router: ``streamlit run streamlit_app.py`` (or ``make run``)."""

import streamlit as st


PAGES = [
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:", url_path="metrics", default=True),
    st.Page("pages/predict.py", title="Predict", icon=":material/upload_file:", url_path="predict"),
    st.Page("pages/review.py", title="Review", icon=":material/rate_review:", url_path="review"),
    st.Page("pages/feedback.py", title="Feedback & export", icon=":material/download:", url_path="feedback"),
]

st.navigation(PAGES, position="hidden").run()
