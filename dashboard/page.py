"""The dashboard page that ``app.py`` serves. Wiring only: page, sidebar, tabs; each tab is a module beside it."""

import streamlit as st

from dashboard import sidebar
from dashboard.state import VIEW_KEY, render_tab, shown_errors
from dashboard.tabs import TABS
from dashboard.warmup import PAGE_SERVED
from generators.registry import load_plugins

# Narrow screens (a window of 900 px or less): the tab bar wraps (every tab in sight), buttons keep their text
# (a column too narrow for one wraps the row), wide tables scroll sideways with a visible bar, chart titles get a
# smaller font. Streamlit's "auto" sidebar closes only at 768 px or less; the script closes it up to 900 px on a
# page's first load unless the visitor has opened or closed it before (Streamlit remembers that choice).
NARROW_PX = 900
# a column that holds a control of its own (not one in a nested row) and no picture
OWN_CONTROL = '> [data-testid="stVerticalBlock"] > [data-testid="stElementContainer"] > :is({})'
NO_PICTURE = ':not(:has(img, [data-testid="stPlotlyChart"]))'
BUTTON_COLUMN = (
    f'[data-testid="stColumn"]:has({OWN_CONTROL.format(".stButton, .stDownloadButton, .stCheckbox")}){NO_PICTURE}'
)
PICKER_COLUMN = (
    f'[data-testid="stColumn"]:has({OWN_CONTROL.format(".stSelectbox, .stMultiSelect, .stNumberInput")}){NO_PICTURE}'
)
NARROW_LAYOUT = f"""
<style>
.st-key-narrow-layout {{ display: none; }}
@media (max-width: {NARROW_PX}px) {{
  [data-testid="stTabs"] [role="tablist"] {{ flex-wrap: wrap; overflow-x: visible; row-gap: 0.25rem; }}
  [data-testid="stHorizontalBlock"]:has(> :is({BUTTON_COLUMN}, {PICKER_COLUMN})) {{ flex-wrap: wrap; }}
  {BUTTON_COLUMN} {{ min-width: min-content; }}
  {PICKER_COLUMN} {{ min-width: 10rem; }}
  :is(.stButton, .stDownloadButton) button {{ min-width: max-content; }}
  [data-testid="stMain"] .stMarkdownEllipsis {{ white-space: normal; }}
  [data-testid="stTable"] > div {{ scrollbar-width: thin; scrollbar-color: #999 transparent; }}
  .js-plotly-plot .gtitle {{ font-size: 13px !important; }}
}}
</style>
<script>
(() => {{
  if (window.genlabNarrowChecked) return;
  window.genlabNarrowChecked = true;
  const chosen = Object.keys(window.localStorage).some((key) => key.startsWith("stSidebarCollapsed-"));
  if (window.innerWidth > {NARROW_PX} || chosen) return;
  let tries = 0;
  const close = () => {{
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (button) {{
      if (button.getAttribute("aria-expanded") === "true") button.click();
    }} else if (++tries < 100) {{
      setTimeout(close, 50);
    }}
  }};
  close();
}})();
</script>
"""

st.set_page_config(page_title="VAE vs GAN generator lab", page_icon="🧪", layout="wide", initial_sidebar_state="auto")
st.container(key="narrow-layout").html(NARROW_LAYOUT, unsafe_allow_javascript=True)
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
