"""Tab 8 — Findings & report: the classic claims checked on these runs, and one zip with everything for a report."""

from __future__ import annotations

import io
import time
import zipfile

import plotly.graph_objects as go
import streamlit as st

from . import export
from . import findings as findings_module
from .metrics import comparison_n, fairness_frame, metric_figures, metric_rows, training_figures
from .samples import sample_grid_png, samples_figure
from .sanity import SANITY_N_CHOICES, gallery_figure, stored_sanity
from .state import Selection, scan_runs
from .sweep import largest_sweep, sweep_figures

ZIP_KEY = "report_zip"
VERDICT_ICONS = {  # Streamlit's bundled icon font: no emoji font needed on the viewer's machine
    findings_module.SUPPORTED: ":green[:material/check_circle:]",
    findings_module.NOT_SUPPORTED: ":red[:material/cancel:]",
    findings_module.MIXED: ":orange[:material/contrast:]",
    findings_module.NO_CLEAR: ":gray[:material/drag_handle:]",
    findings_module.NOT_MEASURED: ":gray[:material/hourglass_empty:]",
}


def report_figures(selection: Selection, rows: list[dict]) -> dict[str, go.Figure]:
    """Every figure of the report by file name: metric charts, training curves, the β sweep and the labelled
    multi-model sample figure."""
    figures = {**metric_figures(rows), **training_figures(selection.runs)}
    if selection.runs:
        figures.update(sweep_figures(largest_sweep(scan_runs()[0], selection.runs[0].info["dataset"])))
        figures["samples"] = samples_figure(selection, "prior")
        figures["nearest_neighbours"] = gallery_figure(selection)
    return figures


def build_zip(selection: Selection, progress=None) -> bytes:
    """figures/*.png + *.pdf (metric charts, training curves, β sweep, samples, nearest-neighbour gallery),
    tables/summary.tex (page width, headline columns), tables/metrics.csv (every column), tables/metrics.md,
    tables/fairness.csv, tables/sanity.md (when computed), methods.md, findings.md, grids/*.png."""
    from evaluation.methods import methods_paragraph
    from evaluation.report import sanity_markdown, to_csv, to_latex, to_markdown

    rows = metric_rows(selection.runs)
    figures = report_figures(selection, rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if rows:
            archive.writestr("tables/metrics.csv", to_csv(rows))
            archive.writestr("tables/metrics.md", to_markdown(rows))
            archive.writestr("tables/summary.tex", to_latex(rows))
        archive.writestr("tables/fairness.csv", fairness_frame(selection.runs).to_csv(index=False))
        panel = next(
            (
                panel_rows
                for n in reversed(SANITY_N_CHOICES)
                if selection.runs and (panel_rows := stored_sanity(selection.runs[0].info["dataset"], n))
            ),
            None,
        )
        if panel:
            archive.writestr("tables/sanity.md", sanity_markdown(panel))
        runs = [
            ({**run.info, "run_name": run.name}, run.capabilities.title, run.model().parameter_counts())
            for run in selection.runs
        ]
        archive.writestr("methods.md", methods_paragraph(runs, rows))
        for run in selection.runs:
            archive.writestr(
                f"grids/{run.name}-samples-seed{selection.seed}.png",
                sample_grid_png(run, selection.n_samples, selection.seed, 2),
            )
        for i, (name, figure) in enumerate(figures.items()):
            if progress:
                progress(i / len(figures), f"exporting {name}")
            for fmt in ("png", "pdf"):
                archive.writestr(f"figures/{name}.{fmt}", export.figure_bytes(figure, fmt))
        found = findings_module.assess(list(selection.runs), rows)
        archive.writestr("findings.md", findings_module.to_markdown(found, list(selection.runs)))
    return buffer.getvalue()


def warm(selection: Selection) -> None:
    """The findings' first computation: a stability claim's Welch interval imports scipy's statistics (~1 s)."""
    findings_module.assess(list(selection.runs), metric_rows(selection.runs))


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    rows = metric_rows(selection.runs)
    st.markdown(
        "Each classic claim of the VAE-vs-GAN comparison, checked on **the selected runs** with the "
        "numbers measured on them. Short training runs can contradict the textbook — that is a finding too."
    )
    n = comparison_n(selection.runs)
    st.caption(
        "A claim is *supported* only when the 95 % interval of the difference it rests on excludes zero; a tie or "
        "an interval that straddles zero is *no clear difference*. "
        + (
            f"All rows compared here were computed at n = {n} samples with the prior sampler."
            if n
            else "The selected runs have no metrics at one shared n yet: compute them in the Metrics tab at one n."
        )
    )
    found = findings_module.assess(list(selection.runs), rows)
    for finding in found:
        st.markdown(f"{VERDICT_ICONS[finding.verdict]} **{finding.claim}** — *{finding.verdict}*  \n{finding.evidence}")
    st.divider()
    st.markdown(
        "**Report export**: every figure as PNG and PDF, a page-width LaTeX table (booktabs, headline columns; the "
        "full table as CSV), the fairness table, a methods paragraph to adapt and cite, the sample grids and these "
        "findings."
    )
    if st.button("Build the report zip", key="report_build"):
        bar = st.progress(0.0, text="Drawing the grids and exporting the figures…")
        st.session_state[ZIP_KEY] = build_zip(selection, lambda f, text: bar.progress(f, text=text))
        bar.progress(1.0, text="The report is ready.")
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
