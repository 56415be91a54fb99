"""The dashboard page that ``app.py`` serves. Wiring only: page, sidebar, tabs; each tab is a module beside it."""

import streamlit as st

from dashboard import sidebar
from dashboard.state import VIEW_KEY, render_tab, shown_errors
from dashboard.tabs import TABS
from dashboard.warmup import PAGE_SERVED
from generators.registry import load_plugins

st.set_page_config(page_title="VAE vs GAN generator lab", page_icon="🧪", layout="wide", initial_sidebar_state="auto")
st.title("VAE vs GAN generator lab")
st.caption(
    "A VAE, a plain autoencoder and a DCGAN (and their class-conditional twins), trained by one harness and "
    "scored by one evaluation: see how they differ, then export the figures and tables."
)


@st.fragment
def tab_area(selection) -> None:
    """The tabs. Only the open one runs (``on_change="rerun"``), and a switch re-runs this fragment alone (not
    the sidebar); each tab is a fragment of its own, so a widget in it re-runs that tab alone."""
    tabs = st.tabs([title for title, _ in TABS], key=VIEW_KEY, on_change="rerun")
    for tab, (title, render) in zip(tabs, TABS):
        with tab:
            if tab.open:
                st.fragment(render_tab)(title, render, selection)


with shown_errors("Reading the runs"):
    load_plugins()
    selection, all_runs = sidebar.render()
    if not all_runs:
        sidebar.render_first_run()
        st.stop()
    if not selection.runs:
        st.info("Pick at least one run in the sidebar.")
    tab_area(selection)
PAGE_SERVED.set()  # the server's background warm-up of the other tabs may start now
