"""Tab — Metrics: the headline table (with intervals), every stored row, the fairness table, labelled charts that
download as PNG/PDF/SVG, and the training curves of every run, one panel per kind of quantity. The rows, charts
and the fairness table come from ``evaluation`` (rows, charts, fairness); this tab draws them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evaluation.charts import metric_figures, training_figures
from evaluation.diagnostics import (
    D_WINS_GAP,
    HISTORY_TAIL_FRACTION,
    loss_balance,
    loss_balance_alarms,
    mode_collapse_alarms,
)
from evaluation.fairness import fairness_frame
from evaluation.groups import group_rows
from evaluation.rows import available_ns, comparison_n, rows_at, stored_rows
from generators.checkpoints import read_history

from . import augmentation, export
from .compute import compute_metrics
from .state import Run, Selection, sections, when_opened

N_CHOICES = (500, 1000, 2000, 5000)
DONE_KEY = "metrics_done"
VIEW_N_KEY, SHOW_N_KEY = "metrics_view_n", "metrics_show_n"

EXPLANATION = """
**FID** compares the feature statistics of generated and real images (lower is better; log scale here, so a
model ten times worse is one step up, not off the chart). The black dash on each bar is the **real-vs-real
floor**: the FID between two disjoint halves of real data, the best any model can reach with this many images.
**Precision** = share of samples that look like real data (quality); **recall** = share of real data the samples
cover (diversity); density and coverage are their outlier-robust versions. **Classes hit** counts the classes
(by the project's classifier) that receive at least 1 % of the samples. **Sharpness** compares the samples'
edge energy with real images' (1 = as crisp as the real images). Numbers in brackets are 95 % intervals.
"""

DISENTANGLEMENT_METRICS = (
    "Each score is near 1 for one dimension per factor and near 0 for a code unrelated to the factors (the FactorVAE "
    "score is then at chance: 1 / the number of factors). **MIG** (Chen et al. "
    "2018): per factor, the mutual information of its best latent dimension minus that of its second best, over the "
    "factor's entropy, averaged over the factors (codes binned in 20 bins). **DCI** (Eastwood & Williams 2018): "
    "trees predict each factor from the code; *disentanglement*: each dimension matters for one factor only; "
    "*completeness*: each factor rests on one dimension only; *informativeness*: how well the factors can be "
    "predicted from the code at all (R² of a nearest-neighbour regression), however they are spread. **FactorVAE "
    "score** (Kim & Mnih 2018): in batches with one factor held fixed, the dimension whose variance drops most "
    "names that factor; the score is the accuracy of that vote. **SAP** (Kumar et al. 2018): per factor, the R² of "
    "its best dimension minus that of its second best."
)


def metrics_table(rows: list[dict]) -> pd.DataFrame:
    from evaluation.report import rows_to_frame

    return rows_to_frame(rows)


CHART_PARTS = {  # the Metrics tab's chart parts (a few charts each, so each opens quickly)
    "FID and precision / recall": ("fid", "precision_recall"),
    "Classes, sharpness, FID against n": ("modes", "sharpness", "fid_against_n"),
}


def loss_balance_note(run: Run) -> str | None:
    """For a model with a discriminator: how clearly D told real from fake at the end of training."""
    gap = loss_balance(pd.DataFrame(read_history(run.run_dir)))
    if gap is None:
        return None
    state = "D wins outright" if gap > D_WINS_GAP else "D cannot tell them apart" if gap < 0.05 else "a contest"
    return (
        f"{run.name} — loss balance: D(real) − D(fake) = {gap:.2f} over the last {HISTORY_TAIL_FRACTION:.0%} of "
        f"the steps ({state}; 0 = D is fooled, 1 = D wins and G gets no gradient)."
    )


def training_alarms(run: Run, row: dict | None) -> list[str]:
    """Plain-language warnings: the discriminator winning outright (models with one) and mode collapse."""
    history = pd.DataFrame(read_history(run.run_dir))
    alarms = loss_balance_alarms(history) if run.capabilities.discriminator else []
    alarms += mode_collapse_alarms(row, len(run.info.get("class_names") or []), run.capabilities)
    return [f"{run.name}: {alarm}" for alarm in alarms]


def render_compute_form(selection: Selection, shown_n: int | None) -> None:
    with st.form("compute_metrics"):
        st.markdown(
            "**Compute the metrics** (FID with intervals, precision/recall, classes, reconstruction, "
            "likelihood, …). The first time, a small classifier is trained as the feature extractor."
        )
        c1, c2 = st.columns(2)
        n = c1.select_slider(
            "Samples per run",
            N_CHOICES,
            value=shown_n if shown_n in N_CHOICES else 1000,
            key="metrics_n",
            help="5000 gives the stable numbers used in reports; 500 is a quick look.",
        )
        recompute = c2.checkbox("Also recompute rows that exist at this n", key="metrics_recompute")
        if st.form_submit_button("Compute"):
            have = {row["run"] for row in rows_at(selection.runs, n)}
            todo = [run for run in selection.runs if recompute or run.name not in have]
            if not todo:
                st.info(f"Every selected run already has metrics at n = {n}; tick the box to recompute them.")
                return
            compute_metrics(todo, n, recompute)
            st.session_state[DONE_KEY] = f"Done: computed {len(todo)} run(s) at n = {n}; showing n = {n}."
            st.session_state[SHOW_N_KEY] = n
            st.rerun()


def render_stale(selection: Selection) -> None:
    """Say which runs have metrics computed on older weights only (they are not shown)."""
    stale = [run.name for run in selection.runs if stored_rows(run, stale=True) and not stored_rows(run)]
    if stale:
        st.warning(
            "Stored metrics of " + ", ".join(stale) + " were computed from older weights (the run was trained "
            "further, or the rows predate weight hashes); they are not shown. Compute them again above."
        )


def render_protocol_check(selection: Selection, rows: list[dict], n: int | None) -> None:
    """Rows of one sampler must share one protocol; if they do not, say which fields differ and offer to
    recompute every selected run under one."""
    from evaluation.protocol import compare_protocols

    for sampler in sorted({row.get("sampler", "prior") for row in rows}):
        check = compare_protocols([row for row in rows if row.get("sampler", "prior") == sampler])
        if check.same:
            continue
        st.warning(
            f"The {sampler}-sampler rows at n = {n} were not made under one protocol: {check.describe()}. "
            "Tables and charts below mix them."
        )
        if st.button(f"Recompute every selected run at n = {n} under one protocol", key=f"reprotocol-{sampler}"):
            compute_metrics(list(selection.runs), n, recompute=True)
            st.rerun()


def render_tables(rows: list[dict], n: int, infos: dict[str, dict]) -> None:
    from evaluation.report import HEADLINE_KEYS, summary_frame, with_factor_keys

    st.markdown(f"**Headline metrics at n = {n}** (↑ higher is better, ↓ lower is better; [95 % interval])")
    st.table(summary_frame(rows, HEADLINE_KEYS, drop_not_applicable=True), hide_index=True)
    factor_keys = with_factor_keys(rows, ())
    if factor_keys:  # a table of its own: beside the headline columns it ran off a 1600-px screen
        st.markdown(
            "**Disentanglement against the known factors** (codes of real test images, made as the last column "
            "says; ↑ higher is better; [95 % interval])"
        )
        st.table(summary_frame(rows, ("run", *factor_keys, "codes_method")), hide_index=True)
        st.caption(DISENTANGLEMENT_METRICS)
    when_opened(
        f"Every column of every row at n = {n}",
        "metrics_full_table",
        lambda: st.dataframe(metrics_table(rows), hide_index=True, key="metrics-table"),
    )
    groups = group_rows(rows, infos)
    if groups:
        st.markdown(
            "**Training-seed groups**: runs of one recipe that differ only in their seed, as mean ± std "
            "over the runs (train one with `python -m generators train MODEL --seeds 0 1 2`)"
        )
        st.dataframe(
            summary_frame(groups).assign(runs=[g["group_n"] for g in groups]), hide_index=True, key="metrics-groups"
        )


def render_metric_charts(rows: list[dict], n: int | None, names: tuple[str, ...]) -> None:
    if not rows:
        st.caption("No metric rows to chart at this n.")
        return
    for name, figure in metric_figures(rows, names).items():
        export.chart(figure, f"{name}-n{n}", f"metrics-{name}")


def render_fairness(selection: Selection) -> None:
    """Per run: what it was given (parameters, latent size, steps, time, batch), then its whole configuration."""
    st.dataframe(fairness_frame(selection.runs), hide_index=True, key="metrics-fairness")
    when_opened("Each run's full configuration", "metrics_configs", lambda: render_configs(selection))


def render_configs(selection: Selection) -> None:
    for run in selection.runs:
        st.markdown(f"**{run.label}**")
        st.json({k: v for k, v in run.info.items() if k != "run_dir"}, expanded=False)


def render_training(selection: Selection, rows: list[dict]) -> None:
    by_run = {row["run"]: row for row in rows if row.get("sampler", "prior") == "prior"}
    for run in selection.runs:
        for alarm in training_alarms(run, by_run.get(run.name)):
            st.warning(alarm)
        note = loss_balance_note(run) if run.capabilities.discriminator else None
        if note:
            st.caption(note)
    for name, figure in training_figures(selection.runs).items():
        export.chart(figure, name, f"metrics-{name}")


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    if DONE_KEY in st.session_state:
        st.success(st.session_state.pop(DONE_KEY))
    ns = available_ns(selection.runs)
    default_n = comparison_n(selection.runs) or (max(ns) if ns else None)
    if ns:
        shown = st.session_state.pop(SHOW_N_KEY, None)  # just computed: show that n (the box keeps its own state)
        if shown in ns or st.session_state.get(VIEW_N_KEY) not in ns:
            st.session_state[VIEW_N_KEY] = shown if shown in ns else default_n
        n = st.selectbox(
            "Show rows computed with n samples",
            ns,
            key=VIEW_N_KEY,
            help="Rows at different n are never mixed in one table or chart (FID depends on n).",
        )
    else:
        n = None
    render_compute_form(selection, n)
    rows = rows_at(selection.runs, n) if n else []
    render_stale(selection)
    render_protocol_check(selection, rows, n)
    missing = [run.name for run in selection.runs if run.name not in {row["run"] for row in rows}]
    if missing:
        st.info(
            f"No metrics at n = {n} for: " + ", ".join(missing) + " (compute them above)."
            if n
            else "No stored metrics yet: compute them above."
        )
    if rows:
        render_tables(rows, n, {run.name: run.info for run in selection.runs})
    sections(
        {
            **{title: lambda names=names: render_metric_charts(rows, n, names) for title, names in CHART_PARTS.items()},
            "Training curves": lambda: render_training(selection, rows),
            "What each run was given": lambda: render_fairness(selection),
            "Augmentation": lambda: augmentation.render(selection),
        },
        "metrics_part",
    )
    with st.expander("What the metrics mean"):
        st.markdown(EXPLANATION)
