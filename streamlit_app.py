"""Dashboard router: ``streamlit run streamlit_app.py`` (or ``make run``)."""

import streamlit as st

from ui.common import NAVIGATION, warm_up_model

PAGES = [st.Page(entry.path, title=entry.title, icon=entry.icon, url_path=entry.url_path) for entry in NAVIGATION]


def _home() -> None:
    """The app root opens the first page under its own address (``/`` -> ``/metrics``).

    Streamlit serves the default page at ``/`` only, so a default Metrics page answered ``/metrics``
    (its sidebar link, a bookmark) with "Page not found".
    """
    st.switch_page(PAGES[0], query_params=st.query_params.to_dict())  # a link's parameters go along


warm_up_model()  # the store opens and the model loads in the background while the first page draws
st.navigation(
    [st.Page(_home, title=NAVIGATION[0].title, url_path="home", default=True), *PAGES], position="hidden"
).run()
