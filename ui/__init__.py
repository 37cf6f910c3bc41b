"""What the pages share and are not pages themselves: navigation, cached model and store, charts, the viewer, sections.

Streamlit treats every file in ``pages/`` as a page, so the helpers live here.
"""
