"""Dashboard router: ``streamlit run streamlit_app.py`` (or ``make run``)."""

import streamlit as st

from ui.common import NAVIGATION

PAGES = [
    st.Page(entry.path, title=entry.title, icon=entry.icon, url_path=entry.url_path, default=index == 0)
    for index, entry in enumerate(NAVIGATION)
]

st.navigation(PAGES, position="hidden").run()
