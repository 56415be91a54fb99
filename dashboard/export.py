"""Charts on the page with their downloads: every chart downloads as PNG, PDF and SVG, made by
``evaluation.figures`` (plotly + kaleido through the machine's Chromium) only when a download button is clicked.

The figures themselves, their template and the exporter live in ``evaluation.figures`` (the report zip and the
command line use the same ones); this module only draws them and offers the buttons.
"""

from __future__ import annotations

import plotly.io as pio
import streamlit as st

from evaluation.figures import (  # noqa: F401 - the tabs draw with these
    FORMATS,
    TEMPLATE_NAME,
    figure_bytes,
    image_panels,
    one_legend_entry_per_name,
    styled,
)

from .state import CHART_COUNT_KEY

# Streamlit's import made its own template the default: figures built from now on start with the lab's again
# (re-templating a built figure costs ~20-50 ms; ``styled`` still checks each figure drawn or exported).
pio.templates.default = TEMPLATE_NAME


def download_buttons(figure, name: str, key: str, formats=("png", "pdf", "svg")) -> None:
    """A row of small download buttons (PNG / PDF / SVG) under a chart; each file is made when clicked.
    ``figure``: a figure, or a function that builds it (then it is built only when a button is clicked)."""
    row = st.container(horizontal=True)  # buttons at their natural width (fixed columns cut "PNG" to "P.")
    for fmt in formats:
        row.download_button(
            fmt.upper(),
            data=lambda fmt=fmt: figure_bytes(figure() if callable(figure) else figure, fmt),
            file_name=f"{name}.{fmt}",
            mime=FORMATS[fmt],
            key=f"{key}-{fmt}",
            on_click="ignore",
            help=f"Download this figure as {fmt.upper()} for a report",
        )


def chart(figure, name: str, key: str) -> None:
    """A chart on the page with its PNG / PDF / SVG downloads. Drawn with the lab's template (``styled``), not
    Streamlit's theme: the page then shows what the downloads contain, and the browser draws it ~10-20 % sooner
    (measured on the Metrics and VAE anatomy tabs)."""
    st.plotly_chart(styled(figure), key=key, theme=None)
    if CHART_COUNT_KEY in st.session_state:  # test mode counts a tab's charts
        st.session_state[CHART_COUNT_KEY] += 1
    download_buttons(figure, name, key)
