"""Dashboard router: ``streamlit run streamlit_app.py`` (or ``make run``).

``streamlit run`` finds ``app`` below and serves this file as an ``st.App``, whose start-up hook
(:mod:`ui.startup`) imports what the Predict page needs, opens the store and loads the model before
the first browser connects, and whose middleware (:mod:`ui.first_paint`) tells the page where the server
is and which scripts it draws first. Every session then runs this file as ``__main__``: the router.
"""

import streamlit as st

if __name__ == "__main__":  # a session's script run (Streamlit runs the file as __main__, as AppTest does)
    from ui.common import NAVIGATION

    PAGES = [st.Page(entry.path, title=entry.title, icon=entry.icon, url_path=entry.url_path) for entry in NAVIGATION]

    def _home() -> None:
        """The app root opens the first page under its own address (``/`` -> ``/metrics``).

        Streamlit serves the default page at ``/`` only, so a default Metrics page answered ``/metrics``
        (its sidebar link, a bookmark) with "Page not found".
        """
        st.switch_page(PAGES[0], query_params=st.query_params.to_dict())  # a link's parameters go along

    st.navigation(
        [st.Page(_home, title=NAVIGATION[0].title, url_path="home", default=True), *PAGES], position="hidden"
    ).run()
else:  # imported by the server that `streamlit run` starts for an st.App
    from starlette.middleware import Middleware

    from ui.first_paint import FirstPaintHints
    from ui.startup import lifespan

    app = st.App(__file__, lifespan=lifespan, middleware=[Middleware(FirstPaintHints)])
