"""Streamlit entry point of the ops dashboard: ``voxflow dashboard`` runs ``streamlit run dashboard/app.py``."""

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="voxflow ops", page_icon="🎙️", layout="wide")
page = st.navigation([
    st.Page(VIEWS / "overview.py", title="Overview", default=True),
    st.Page(VIEWS / "queue.py", title="Queue"),
    st.Page(VIEWS / "scaling.py", title="Scaling"),
    st.Page(VIEWS / "runs.py", title="Runs"),
    st.Page(VIEWS / "models.py", title="Models"),
])
st.sidebar.caption("voxflow ops dashboard · read-only")
page.run()
