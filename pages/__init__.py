"""Dashboard pages (routed by ``streamlit_app.py``) and their shared helpers."""
