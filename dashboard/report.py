"""Tab 8 — Findings & report: the classic claims checked on these runs, and one zip with everything for a report."""

from __future__ import annotations

import io
import time
import zipfile

import plotly.graph_objects as go
import streamlit as st

from . import export
from . import findings as findings_module
from .metrics import CURVE_POINTS, comparison_n, fairness_frame, metric_figures, metric_rows, training_figures
from .samples import ONE_ROW_PER_CLASS, draws_count, sample_grid_png, samples_figure
from .sanity import GALLERY_NEIGHBOURS, GALLERY_SAMPLES, SANITY_N_CHOICES, gallery, gallery_figure, stored_sanity
from .state import Selection, scan_runs
from .sweep import largest_sweep, sweep_figures

ZIP_KEY = "report_zip"
VERDICT_ICONS = {  # Streamlit's bundled icon font: no emoji font needed on the viewer's machine
    findings_module.SUPPORTED: ":green[:material/check_circle:]",
    findings_module.CONTRADICTED: ":red[:material/cancel:]",
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


def _per_run(counts: dict[str, int], unit: str) -> str:
    """``n = 64 {unit} per run``, or each run's own n where they differ."""
    if len(set(counts.values())) == 1:
        return f"n = {next(iter(counts.values()))} {unit} per run"
    return "n = " + ", ".join(f"{count} {unit} for {name}" for name, count in counts.items())


def figure_captions(selection: Selection, rows: list[dict], names) -> dict[str, str]:
    """One sentence per figure of the report (by its name in ``report_figures``): what it shows and with which n.
    A figure this does not know gets no caption (the report test then fails, so a new figure is captioned)."""
    first = rows[0] if rows else {}
    n, n_real = first.get("n_fake"), first.get("n_real")
    against = f" against {n_real} real training images" if n_real else ""
    by_run = {run.name: run for run in selection.runs}
    sweep = largest_sweep(scan_runs()[0], selection.runs[0].info["dataset"]) if selection.runs else {}
    sweep_n = comparison_n(list(sweep.values())) if sweep else None
    betas = ", ".join(f"{beta:g}" for beta in sweep)
    fixed = {
        "fid": f"FID of each run's n = {n} prior samples{against} (log scale, lower is better), with 95 % "
        "bootstrap intervals and, as a black dash, the real-vs-real floor: the FID two halves of real data score.",
        "precision_recall": f"Precision and recall (quality and diversity) with their outlier-robust versions "
        f"density and coverage (k = 5 nearest neighbours) of n = {n} samples per run{against}, with 95 % bootstrap "
        "intervals.",
        "modes": f"The share of each run's n = {n} samples that the project's classifier puts in each class; the "
        "dashed line marks equal shares.",
        "sharpness": f"Sharpness of n = {n} samples per run: their Laplacian variance relative to real images "
        "(1 = as sharp as real digits, lower = blurrier).",
        "samples": f"Prior samples of every run from one seed ({selection.seed}), "
        + _per_run(
            {run.label: draws_count(run, selection.n_samples, ONE_ROW_PER_CLASS) for run in selection.runs}, "draws"
        )
        + ".",
        "beta_rate_distortion": f"Rate (KL term) against distortion (reconstruction term) at the end of training, "
        f"one point per β ({betas}) of the β sweep's n = {len(sweep)} runs of one recipe.",
        "beta_fid": f"FID of n = {sweep_n} prior samples per run against β ({betas}) for the β sweep's "
        f"{len(sweep)} runs of one recipe, with 95 % bootstrap intervals.",
    }
    curve = [point["n"] for row in rows for point in row.get("fid_curve") or []]
    if curve:
        fixed["fid_against_n"] = (
            f"FID against the number of samples, n = {min(curve)} to {max(curve)} per run (log scales), with 95 % "
            "intervals and each run's FID extrapolated to infinitely many samples (FID∞, in the legend): FID falls "
            "as n grows, so runs are compared at one n."
        )
    if selection.runs:
        train_size = len(gallery(selection.runs[0], selection.seed)[2])
        fixed["nearest_neighbours"] = (
            f"n = {GALLERY_SAMPLES} prior samples per run (seed {selection.seed}, left column) beside their "
            f"{GALLERY_NEIGHBOURS} nearest images among the {train_size} training images, in the classifier's "
            "feature space: a model that copies shows a sample beside its twin."
        )
    captions = {}
    for name in names:
        run = by_run.get(name.removeprefix("training_")) if name.startswith("training_") else None
        if run is not None:
            d_panel = (
                "; the lower panel: D's mean output on real and generated images"
                if (run.capabilities.discriminator)
                else ""
            )
            captions[name] = (
                f"Training curves of {run.name} over its n = {run.info.get('step')} steps (history.csv, smoothed "
                f"to at most {CURVE_POINTS} points): the loss terms it logged{d_panel}."
            )
        elif name in fixed:
            captions[name] = fixed[name]
    return captions


def sanity_panel(selection: Selection) -> tuple[list[dict] | None, str | None]:
    """The stored sanity panel of the first run's dataset at the largest n it was computed at, and that n."""
    for n in reversed(SANITY_N_CHOICES):
        if selection.runs and (rows := stored_sanity(selection.runs[0].info["dataset"], n)):
            return rows, n
    return None, None


def readme(selection: Selection, names: list[str], sanity_n: int | None) -> str:
    """What is in the zip, and what is not and why (the sanity panel is included only when it was computed)."""
    dataset = selection.runs[0].info["dataset"] if selection.runs else "the runs' dataset"
    lines = [
        "# Report",
        "",
        f"Runs: {', '.join(run.name for run in selection.runs) or 'none'}.",
        "",
        "- `methods.md`: a methods paragraph to adapt and cite (data, models, budgets, machine, evaluation).",
        "- `findings.md`: the textbook claims tested on these runs.",
        "- `figures.md`: one caption per figure (what it shows, with which n); the figures are in `figures/` as PNG "
        "and PDF, the sample grids in `grids/`.",
        "- `tables/summary.tex`: the page-width LaTeX table (booktabs) of the headline columns; `tables/metrics.md` "
        "the summary table; `tables/metrics.csv` every column (`tables/columns.md` says what each one is, with its "
        "unit); `tables/fairness.csv` what each run was given.",
    ]
    if sanity_n is not None:
        lines.append(
            "- `tables/sanity.md`: the metric sanity panel (every metric on real and on corrupted images, "
            f"n = {sanity_n})."
        )
    else:
        lines.append(
            "- Not included: the metric sanity panel (`tables/sanity.md`), which has not been computed for "
            f"{dataset}. Compute it in the dashboard's *Sanity & copying* tab (about a minute per 1 000 images) or "
            f"with `python -m evaluation sanity --dataset {dataset} --n 1000 --markdown sanity.md`, then build the "
            "zip again."
        )
    return "\n".join(lines) + "\n"


def figures_markdown(captions: dict[str, str], files: dict[str, list[str]]) -> str:
    """``figures.md``: each figure's files, then its caption."""
    lines = ["# Figures", "", "One sentence per figure: what it shows and with which n.", ""]
    for name, caption in captions.items():
        lines.append(f"- {', '.join(f'`{path}`' for path in files[name])}: {caption}")
    return "\n".join(lines) + "\n"


def build_zip(selection: Selection, progress=None) -> bytes:
    """README.md, figures/*.png + *.pdf (metric charts, training curves, β sweep, samples, nearest-neighbour
    gallery) with their captions in figures.md, tables/summary.tex (page width, headline columns),
    tables/metrics.csv (every column) with tables/columns.md, tables/metrics.md, tables/fairness.csv,
    tables/sanity.md (when computed; README.md says when it is not), methods.md, findings.md, grids/*.png."""
    from evaluation.methods import methods_paragraph
    from evaluation.report import columns_markdown, sanity_markdown, to_csv, to_latex, to_markdown

    rows = metric_rows(selection.runs)
    figures = report_figures(selection, rows)
    panel, sanity_n = sanity_panel(selection)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.md", readme(selection, list(figures), sanity_n))
        if rows:
            archive.writestr("tables/metrics.csv", to_csv(rows))
            archive.writestr("tables/columns.md", columns_markdown(rows))
            archive.writestr("tables/metrics.md", to_markdown(rows))
            archive.writestr("tables/summary.tex", to_latex(rows))
        archive.writestr("tables/fairness.csv", fairness_frame(selection.runs).to_csv(index=False))
        if panel:
            archive.writestr("tables/sanity.md", sanity_markdown(panel))
        runs = [
            ({**run.info, "run_name": run.name}, run.capabilities.title, run.model().parameter_counts())
            for run in selection.runs
        ]
        archive.writestr("methods.md", methods_paragraph(runs, rows))
        captions = figure_captions(selection, rows, figures)
        files = {name: [f"figures/{name}.{fmt}" for fmt in ("png", "pdf")] for name in figures}
        for run in selection.runs:
            name = f"{run.name}-samples-seed{selection.seed}"
            files[name] = [f"grids/{name}.png"]
            count = draws_count(run, selection.n_samples, ONE_ROW_PER_CLASS)
            captions[name] = f"The sample grid of {run.label}: n = {count} prior samples from seed {selection.seed}."
            archive.writestr(files[name][0], sample_grid_png(run, selection.n_samples, selection.seed, 2))
        archive.writestr("figures.md", figures_markdown(captions, files))
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
