"""Figures for reports, made offline by plotly's own exporter (kaleido 1.x, which drives the machine's Chromium —
Debian's ``chromium`` here) as PNG, PDF or SVG, and labelled multi-model image figures (one panel per model) built
as plotly figures so they export the same way. The dashboard draws and offers these figures; the report zip and
``python -m evaluation report`` export them; nothing here imports Streamlit.

Exports go through one Chromium kept running per process (kaleido's sync server): the first export takes a few
seconds, later ones a fraction of one.

Every figure is drawn and exported with one template, ``TEMPLATE`` (plotly_white: a real colorway), applied by
``styled``. Importing Streamlit makes its own "streamlit" template plotly's default, whose colorway is placeholder
colours ('#000001', '#000002', …) that only Streamlit's frontend replaces: a figure exported with it draws every
trace black.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import warnings

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from generators.errors import UserError

FORMATS = {"png": "image/png", "pdf": "application/pdf", "svg": "image/svg+xml"}
EXPORT_WIDTH = 1000  # px at scale 1; PNGs are written at twice that for print
PNG_SCALE = 2
_lock = threading.Lock()
_server_started = False

TEMPLATE_NAME = "genlab"
TEMPLATE = go.layout.Template(pio.templates["plotly_white"])  # white background, plotly's ten-colour colorway
pio.templates[TEMPLATE_NAME] = TEMPLATE
# Figures built from now on start with it (re-templating a built figure costs ~20-50 ms); ``styled`` still checks
# each figure drawn or exported, whatever the default was when it was built.
pio.templates.default = TEMPLATE_NAME
LOG_TICKFORMAT = "~g"  # log-axis ticks read 0.5, 2, 5, 20 (plotly's default labels them "5", "2" in small print)


def _template_signature(template) -> tuple:
    return (tuple(template.layout.colorway or ()), template.layout.plot_bgcolor, template.layout.paper_bgcolor)


_SIGNATURE = _template_signature(TEMPLATE)


def styled(figure: go.Figure) -> go.Figure:
    """``figure`` with the lab's template (traces without an explicit colour take it from its colorway; explicit
    colours are kept) and log axes labelled with whole numbers (0.5, 2, 5000: never a bare "5" for 0.5 or 5000).
    Changes the figure in place (once: a figure already styled costs well under a millisecond) and returns it."""
    if _template_signature(figure.layout.template) != _SIGNATURE:
        figure.layout.template = TEMPLATE
    for name in figure.layout:
        if name.startswith(("xaxis", "yaxis")):
            axis = figure.layout[name]
            if axis.type == "log" and axis.tickformat is None and axis.tickvals is None and axis.tickmode != "array":
                axis.tickformat = LOG_TICKFORMAT
    return figure


def _find_chromium() -> None:
    """Point kaleido at Debian's chromium when it has not been told where a browser is."""
    if "BROWSER_PATH" not in os.environ:
        found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if found:
            os.environ["BROWSER_PATH"] = found


def figure_bytes(figure: go.Figure, fmt: str) -> bytes:
    """``figure`` as PNG, PDF or SVG bytes, at its own layout size (or ``EXPORT_WIDTH`` wide). One export at a
    time per process (one shared browser)."""
    global _server_started
    import kaleido

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    width, height = int(figure.layout.width or EXPORT_WIDTH), int(figure.layout.height or 500)
    with _lock:
        try:
            if not _server_started:
                _find_chromium()
                kaleido.start_sync_server(silence_warnings=True)
                _server_started = True
            with warnings.catch_warnings():  # plotly notes that its per-call options are unused with a server
                warnings.simplefilter("ignore", UserWarning)
                return styled(figure).to_image(
                    format=fmt, width=width, height=height, scale=PNG_SCALE if fmt == "png" else 1
                )
        except Exception as exc:  # no browser, or it could not start
            raise UserError(
                f"could not export the figure as {fmt.upper()} ({type(exc).__name__}: {str(exc)[:150]}); figure "
                "export needs Chromium or Chrome (on Debian: apt-get install chromium)"
            ) from None


def one_legend_entry_per_name(figure: go.Figure) -> go.Figure:
    """Show each trace name once in the legend (a figure with a panel per run repeats its traces per panel)."""
    seen = set()
    for trace in figure.data:
        trace.showlegend = trace.name not in seen
        seen.add(trace.name)
    return figure


PANEL_TITLE_SIZE = 16  # px: plotly's subplot titles
PANEL_TITLE_PX = 30  # room above each panel for its subtitle: a row's title never covers the row above
PANEL_TITLE_EM = 0.55  # a subtitle's width per character (em), generous: Chromium's Arial averages ~0.45


def image_panels(panels: list[tuple[str, np.ndarray]], title: str, columns: int | None = None) -> go.Figure:
    """One labelled figure of image panels (e.g. one sample grid per model, side by side).

    ``panels``: (subtitle, uint8 array H x W or H x W x 3). Panels keep their pixel size; the figure is sized so
    that each panel is drawn at least 240 px wide and as wide as its subtitle, with ``PANEL_TITLE_PX`` between rows
    for the subtitles."""
    columns = columns or len(panels)
    rows = math.ceil(len(panels) / columns)
    widest = max(array.shape[1] for _, array in panels)
    tallest = max(array.shape[0] for _, array in panels)
    title_px = PANEL_TITLE_EM * PANEL_TITLE_SIZE * max(len(name) for name, _ in panels) + 16
    panel_px = max(240, min(widest, 520), math.ceil(title_px))  # wide enough for its subtitle (never overprinted)
    panel_height = math.ceil(panel_px * tallest / widest)
    plot_height = rows * panel_height + (rows - 1) * PANEL_TITLE_PX
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[name for name, _ in panels],
        horizontal_spacing=0.02,
        vertical_spacing=PANEL_TITLE_PX / plot_height,
    )
    for i, (_, array) in enumerate(panels):
        rgb = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array
        figure.add_trace(go.Image(z=rgb, hoverinfo="skip"), row=i // columns + 1, col=i % columns + 1)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    margin = {"l": 10, "r": 10, "t": 80, "b": 10}
    figure.update_layout(
        title=title,
        width=columns * panel_px + 40,
        height=plot_height + margin["t"] + margin["b"],
        margin=margin,
    )
    return figure
