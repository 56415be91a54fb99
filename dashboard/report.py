"""Tab 8 — Findings & report: the classic claims checked on these runs, and one zip with everything for a report.
The claims are ``evaluation.findings``, the zip ``evaluation.bundle``; this tab draws them and offers the buttons."""

from __future__ import annotations

import time

import streamlit as st

from evaluation import bundle
from evaluation import findings as findings_module
from evaluation.rows import comparison_n
from evaluation.rows import comparison_rows as metric_rows

from .state import Selection, checkpoints_dir, scan_runs

ZIP_KEY = "report_zip"
VERDICT_ICONS = {  # Streamlit's bundled icon font: no emoji font needed on the viewer's machine
    findings_module.SUPPORTED: ":green[:material/check_circle:]",
    findings_module.CONTRADICTED: ":red[:material/cancel:]",
    findings_module.NO_CLEAR: ":gray[:material/drag_handle:]",
    findings_module.NOT_MEASURED: ":gray[:material/hourglass_empty:]",
}


def report_inputs(selection: Selection) -> bundle.ReportInputs:
    """The report of the selected runs with the sidebar's seed and grid size; the β sweep is picked from every
    run in the checkpoints folder (the dashboard's cached records)."""
    return bundle.ReportInputs(
        selection.runs, selection.seed, selection.n_samples, checkpoints_dir(), tuple(scan_runs()[0])
    )


def build_zip(selection: Selection, progress=None) -> bytes:
    """The report zip of the selection (``evaluation.bundle.build_zip``: the same as ``python -m evaluation
    report``)."""
    return bundle.build_zip(report_inputs(selection), progress)


def sanity_panel(selection: Selection):
    return bundle.sanity_panel(report_inputs(selection))


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
        "A claim is *supported* only when the 95 % interval of every difference it rests on excludes zero in its "
        "favour, *contradicted* when one excludes zero the other way, and otherwise *no clear difference*; "
        "*not measured yet* means nothing could be tested. "
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
        "**Report export**: every figure as PNG and PDF with a caption each (`figures.md`), a page-width LaTeX table "
        "(booktabs, headline columns; the full table as CSV, its columns and units in `columns.md`), the fairness "
        "table, a methods paragraph to adapt and cite, the sample grids and these findings."
    )
    if selection.runs and sanity_panel(selection)[0] is None:
        st.caption(
            "The metric sanity panel is not computed for this dataset yet, so the zip leaves it out (its README says "
            "so): compute it in *Sanity & copying* first to include it."
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
