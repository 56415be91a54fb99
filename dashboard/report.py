"""Tab 8 — Findings & report: the classic claims checked on these runs, and one zip with everything for a report."""

from __future__ import annotations

import io
import time
import zipfile

import plotly.offline
import streamlit as st

from . import findings as findings_module
from .metrics import metric_figures, metric_rows, training_figures
from .samples import sample_grid_png
from .state import Selection, scan_runs
from .sweep import sweep_figures, sweep_runs

ZIP_KEY = "report_zip"
VERDICT_ICONS = {  # Streamlit's bundled icon font: no emoji font needed on the viewer's machine
    findings_module.SUPPORTED: ":green[:material/check_circle:]",
    findings_module.NOT_SUPPORTED: ":red[:material/cancel:]",
    findings_module.MIXED: ":orange[:material/contrast:]",
    findings_module.NOT_MEASURED: ":gray[:material/hourglass_empty:]",
}


def build_zip(selection: Selection) -> bytes:
    """metrics.{csv,md,tex}, grids/*.png, figures/*.html (+ one shared plotly.min.js), findings.md."""
    from evaluation.report import to_csv, to_latex, to_markdown

    rows = metric_rows(selection.runs)
    figures = {**metric_figures(rows), **training_figures(selection.runs)}
    if selection.runs:
        figures.update(sweep_figures(sweep_runs(scan_runs()[0], selection.runs[0].info["dataset"])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if rows:
            archive.writestr("metrics.csv", to_csv(rows))
            archive.writestr("metrics.md", to_markdown(rows))
            archive.writestr("metrics.tex", to_latex(rows))
        for run in selection.runs:
            archive.writestr(
                f"grids/{run.name}-samples-seed{selection.seed}.png",
                sample_grid_png(run, selection.n_samples, selection.seed, scale=2),
            )
        if figures:  # the pages load ./plotly.min.js, so they open offline once the zip is extracted
            archive.writestr("figures/plotly.min.js", plotly.offline.get_plotlyjs())
        for name, figure in figures.items():
            archive.writestr(f"figures/{name}.html", figure.to_html(include_plotlyjs="directory", full_html=True))
        found = findings_module.assess(list(selection.runs), rows)
        archive.writestr("findings.md", findings_module.to_markdown(found, list(selection.runs)))
    return buffer.getvalue()


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    rows = metric_rows(selection.runs)
    st.markdown(
        "Each classic claim of the VAE-vs-GAN comparison, checked on **the selected runs** with the "
        "numbers measured on them. Short training runs can contradict the textbook — that is a finding too."
    )
    found = findings_module.assess(list(selection.runs), rows)
    for finding in found:
        st.markdown(f"{VERDICT_ICONS[finding.verdict]} **{finding.claim}** — *{finding.verdict}*  \n{finding.evidence}")
    st.divider()
    st.markdown(
        "**Report export**: the metric table as CSV, Markdown and LaTeX, the sample grids as PNG, every "
        "chart as a standalone HTML page, and these findings as Markdown."
    )
    if st.button("Build the report zip", key="report_build"):
        with st.spinner("Drawing the grids and the charts…"):
            st.session_state[ZIP_KEY] = build_zip(selection)
    if ZIP_KEY in st.session_state:
        st.download_button(
            "Download report.zip",
            st.session_state[ZIP_KEY],
            file_name=f"genlab-report-{time.strftime('%Y%m%d-%H%M')}.zip",
            mime="application/zip",
            key="report_download",
        )
    st.download_button(
        "Download findings.md",
        findings_module.to_markdown(found, list(selection.runs)),
        file_name="findings.md",
        mime="text/markdown",
        key="findings_download",
    )
