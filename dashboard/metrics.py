"""Tab — Metrics: the headline table (with intervals), every stored row, the fairness table, labelled charts that
download as PNG/PDF/SVG, and the training curves of every run, one panel per kind of quantity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from evaluation import load_metrics
from evaluation.diagnostics import (
    D_WINS_GAP,
    HISTORY_TAIL_FRACTION,
    loss_balance,
    loss_balance_alarms,
    mode_collapse_alarms,
)
from evaluation.groups import group_rows
from evaluation.metric_specs import metric
from generators.checkpoints import read_history

from . import export
from .state import Run, Selection, checkpoints_dir, per_run_cache, sections, when_opened

N_CHOICES = (500, 1000, 2000, 5000)
CURVE_POINTS = 400
IGNORED_HISTORY = {"step", "epoch", "seconds", "beta"}
PROBABILITY_COLUMNS = {"d_real", "d_fake"}
DONE_KEY = "metrics_done"
VIEW_N_KEY, SHOW_N_KEY = "metrics_view_n", "metrics_show_n"

EXPLANATION = """
**FID** compares the feature statistics of generated and real images (lower is better; log scale here, so a
model ten times worse is one step up, not off the chart). The black dash on each bar is the **real-vs-real
floor**: the FID between two disjoint halves of real data, the best any model can reach with this many images.
**Precision** = share of samples that look like real data (quality); **recall** = share of real data the samples
cover (diversity); density and coverage are their outlier-robust versions. **Classes hit** counts the classes
(by the project's classifier) that receive at least 1 % of the samples. **Sharpness** compares the samples'
edge energy with real images' (1 = as crisp as real digits). Numbers in brackets are 95 % intervals.
"""


@per_run_cache
def weights_hash(run: Run) -> str | None:
    from evaluation.store import weights_sha256

    return weights_sha256(run.run_dir)


def stored_rows(run: Run, stale: bool = False) -> list[dict]:
    """The stored rows of a run (one per n, sampler and settings) computed from its current weights, labelled
    with the run's name; ``stale=True``: the rows computed from older weights instead (e.g. before a resume)."""
    rows = [{**row, "run": run.name} for row in load_metrics(run.run_dir).values()]
    current = weights_hash(run)
    return [row for row in rows if (row.get("weights_sha256") == current) != stale]


def available_ns(runs) -> list[int]:
    return sorted({row.get("n_fake") for run in runs for row in stored_rows(run) if row.get("n_fake")})


def rows_at(runs, n: int) -> list[dict]:
    """Every stored row at exactly ``n`` samples (all samplers), in the order of the runs."""
    return [row for run in runs for row in stored_rows(run) if row.get("n_fake") == n]


def comparison_n(runs) -> int | None:
    """The largest n at which every run has a prior-sampler row: rows at one n are comparable, mixed n are not."""
    shared = None
    for run in runs:
        ns = {row.get("n_fake") for row in stored_rows(run) if row.get("sampler", "prior") == "prior"}
        shared = ns if shared is None else shared & ns
    return max(shared) if shared else None


def comparison_rows(runs) -> list[dict]:
    """One prior-sampler row per run, all at one n (``comparison_n``); [] when no such n exists."""
    n = comparison_n(runs)
    if n is None:
        return []
    return [row for row in rows_at(runs, n) if row.get("sampler", "prior") == "prior"]


def stored_row(run: Run) -> dict | None:
    """The run's prior-sampler row with the most samples, or None."""
    rows = [row for row in stored_rows(run) if row.get("sampler", "prior") == "prior"]
    return max(rows, key=lambda row: row.get("n_fake") or 0) if rows else None


def metric_rows(runs) -> list[dict]:
    """The rows the findings and the report compare: one per run, at one shared n."""
    return comparison_rows(runs)


def metrics_table(rows: list[dict]) -> pd.DataFrame:
    from evaluation.report import rows_to_frame

    return rows_to_frame(rows)


def row_label(row: dict) -> str:
    sampler = row.get("sampler", "prior")
    return row["run"] if sampler == "prior" else f"{row['run']} ({sampler})"


def fid_figure(rows: list[dict]) -> go.Figure | None:
    rows = [row for row in rows if row.get("fid") is not None]
    if not rows:
        return None
    labels, spec = [row_label(row) for row in rows], metric("fid")
    has_ci = all(row.get("fid_ci_low") is not None for row in rows)
    error = None
    if has_ci:
        error = {
            "type": "data",
            "symmetric": False,
            "array": [row["fid_ci_high"] - row["fid"] for row in rows],
            "arrayminus": [row["fid"] - row["fid_ci_low"] for row in rows],
        }
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=[row["fid"] for row in rows],
            name="FID",
            error_y=error,
            text=[f"{row['fid']:.3g}" for row in rows],
            textposition="outside",
        )
    )
    floors = [row.get("fid_floor") for row in rows]
    if any(floor is not None for floor in floors):
        figure.add_trace(
            go.Scatter(
                x=labels,
                y=floors,
                mode="markers",
                name="real-vs-real floor",
                marker={"symbol": "line-ew-open", "size": 40, "line": {"width": 3}, "color": "black"},
            )
        )
    n = rows[0].get("n_fake")
    figure.update_layout(
        title=f"{spec.title} (log scale; n = {n} samples per run) and the real-vs-real floor",
        yaxis={"type": "log", "title": "FID (log scale)"},
        xaxis_title="run",
        height=420,
        legend={"orientation": "h", "y": -0.25},
        margin={"b": 100},
    )
    return figure


def prdc_figure(rows: list[dict]) -> go.Figure | None:
    keys = ("precision", "recall", "density", "coverage")
    if not any(row.get(key) is not None for row in rows for key in keys):
        return None
    figure = go.Figure()
    for row in rows:
        values = [row.get(key) for key in keys]
        error = None
        if all(row.get(f"{key}_ci_low") is not None for key in keys):
            error = {
                "type": "data",
                "symmetric": False,
                "array": [row[f"{k}_ci_high"] - row[k] for k in keys],
                "arrayminus": [row[k] - row[f"{k}_ci_low"] for k in keys],
            }
        figure.add_trace(go.Bar(x=[metric(k).title for k in keys], y=values, name=row_label(row), error_y=error))
    figure.update_layout(
        barmode="group",
        height=400,
        yaxis_title="score (0 – 1; density can exceed 1)",
        xaxis_title="metric",
        title="Precision / recall (quality / diversity), density / coverage",
        legend={"orientation": "h", "y": -0.25},
        margin={"b": 100},
    )
    return figure


def modes_figure(rows: list[dict]) -> go.Figure | None:
    rows = [row for row in rows if row.get("class_histogram")]
    if not rows:
        return None
    figure = go.Figure()
    classes = max(len(row["class_histogram"]) for row in rows)
    for row in rows:
        figure.add_trace(
            go.Bar(x=list(range(len(row["class_histogram"]))), y=row["class_histogram"], name=row_label(row))
        )
    figure.add_hline(
        y=1 / classes,
        line_dash="dash",
        line_color="black",
        annotation_text="equal shares",
        annotation_position="top left",
    )
    figure.update_layout(
        barmode="group",
        height=400,
        title="Class histogram of the samples",
        xaxis={"title": "class (by the project's classifier)", "tickmode": "linear", "dtick": 1},
        yaxis={"title": "share of samples", "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.25},
        margin={"b": 100},
    )
    return figure


def sharpness_figure(rows: list[dict]) -> go.Figure | None:
    rows = [row for row in rows if row.get("sharpness") is not None]
    if not rows:
        return None
    spec = metric("sharpness")
    figure = go.Figure(go.Bar(x=[row_label(row) for row in rows], y=[row["sharpness"] for row in rows]))
    figure.add_hline(y=1.0, line_dash="dash", line_color="black", annotation_text="real images")
    figure.update_layout(
        height=360, title=f"{spec.title}: {spec.meaning}", yaxis_title=spec.axis_title, xaxis_title="run"
    )
    return figure


def fid_curve_figure(rows: list[dict]) -> go.Figure | None:
    """FID against the number of samples (with intervals) and each run's extrapolated FID at infinite n."""
    rows = [row for row in rows if row.get("fid_curve")]
    if not rows:
        return None
    figure = go.Figure()
    for row in rows:
        points = sorted(row["fid_curve"], key=lambda p: p["n"])
        low = [p["fid"] - p["ci_low"] if p.get("ci_low") is not None else 0 for p in points]
        high = [p["ci_high"] - p["fid"] if p.get("ci_high") is not None else 0 for p in points]
        label = row_label(row) + (f" (FID∞ ≈ {row['fid_inf']:.3g})" if row.get("fid_inf") is not None else "")
        figure.add_trace(
            go.Scatter(
                x=[p["n"] for p in points],
                y=[p["fid"] for p in points],
                mode="lines+markers",
                name=label,
                error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
            )
        )
    figure.update_layout(
        height=400,
        title="FID against the number of samples (FID is biased upwards at small n)",
        xaxis={"title": "samples n (log scale)", "type": "log"},
        yaxis={"title": "FID (log scale)", "type": "log"},
        legend={"orientation": "h", "y": -0.3},
        margin={"b": 110},
    )
    return figure


FIGURE_BUILDERS = {
    "fid": fid_figure,
    "fid_against_n": fid_curve_figure,
    "precision_recall": prdc_figure,
    "modes": modes_figure,
    "sharpness": sharpness_figure,
}
CHART_PARTS = {  # the Metrics tab's chart parts (a few charts each, so each opens quickly)
    "FID and precision / recall": ("fid", "precision_recall"),
    "Classes, sharpness, FID against n": ("modes", "sharpness", "fid_against_n"),
}


def metric_figures(rows: list[dict], names=tuple(FIGURE_BUILDERS)) -> dict[str, go.Figure]:
    """The metric charts by file-friendly name (the report exports the same figures); only ``names``."""
    figures = {name: FIGURE_BUILDERS[name](rows) for name in names}
    return {name: figure for name, figure in figures.items() if figure is not None}


def history_frame(run: Run) -> pd.DataFrame:
    """history.csv smoothed and thinned to at most ``CURVE_POINTS`` points per run."""
    frame = pd.DataFrame(read_history(run.run_dir))
    if frame.empty:
        return frame
    frame = frame[[c for c in frame.columns if not c.startswith("kl_dim_")]]
    window = max(1, len(frame) // CURVE_POINTS)
    smoothed = frame.rolling(window, min_periods=1).mean()
    smoothed["step"] = frame["step"]
    return smoothed.iloc[::window]


def training_figure(run: Run) -> go.Figure | None:
    """The run's curves, one panel per kind of quantity: losses (nats) and, for a GAN, D's mean outputs."""
    frame = history_frame(run)
    columns = [c for c in frame.columns if c not in IGNORED_HISTORY]
    if frame.empty or not columns:
        return None
    # (panel title above it, short y-axis title: a long one runs past its panel into the next one's title)
    losses = [c for c in columns if c not in PROBABILITY_COLUMNS]
    panels = [("loss terms (nats per image or per batch mean)", "loss (nats)", losses)]
    if PROBABILITY_COLUMNS & set(columns):
        probabilities = [c for c in columns if c in PROBABILITY_COLUMNS]
        panels.append(("D's mean output (probability that the image is real)", "P(real)", probabilities))
    figure = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=[title for title, _, _ in panels],
    )
    for i, (_, axis_title, names) in enumerate(panels, start=1):
        for name in names:
            figure.add_trace(go.Scatter(x=frame["step"], y=frame[name], name=name, mode="lines"), row=i, col=1)
        figure.update_yaxes(title_text=axis_title, row=i, col=1)
    figure.update_xaxes(title_text="training step", row=len(panels), col=1)
    figure.update_layout(
        height=280 * len(panels) + 60, title=f"{run.label}: training curves", legend={"orientation": "h", "y": -0.2}
    )
    return figure


def training_figures(runs) -> dict[str, go.Figure]:
    """One figure per run, keyed ``training_<run>``."""
    figures = {f"training_{run.name}": training_figure(run) for run in runs}
    return {name: figure for name, figure in figures.items() if figure is not None}


def fairness_frame(runs) -> pd.DataFrame:
    """Per run: what it was given — parameters (per network), latent size, steps, epochs, seconds, batch size."""
    rows = []
    for run in runs:
        counts = run.model().parameter_counts()
        tc = run.info.get("train_config") or {}
        rows.append(
            {
                "run": run.name,
                "model": run.capabilities.title,
                "parameters": " + ".join(f"{name} {count / 1e6:.2f} M" for name, count in counts.items()),
                "latent size": run.info["model_config"].get("latent_dim"),
                "steps": run.info.get("step"),
                "epochs": run.info.get("epoch"),
                "training seconds": run.info.get("seconds"),
                "batch size": tc.get("batch_size"),
                "samplers with metrics": ", ".join(sorted({row.get("sampler", "prior") for row in stored_rows(run)}))
                or "—",
            }
        )
    return pd.DataFrame(rows)


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


def extractor_cache() -> Path:
    """The evaluation's feature extractors live beside the runs (``_`` folders are not runs)."""
    return checkpoints_dir() / "_extractors"


def compute(runs, n: int, recompute: bool) -> None:
    """Evaluate each run (stored in its metrics.json), with one progress bar for all of them.

    Each run is evaluated in a child process (``evaluation.isolated``), so a crash in native code ends that
    evaluation, not the server; the runs that failed are reported together after the others are done.
    """
    from evaluation.isolated import evaluate_isolated
    from generators.errors import UserError

    bar = st.progress(0.0, text="Starting the evaluation…")
    failures = []
    for i, run in enumerate(runs):

        def report(fraction: float, message: str, i=i, run=run) -> None:
            overall = (i + min(max(fraction, 0.0), 1.0)) / len(runs)
            bar.progress(overall, text=f"{run.name}: {message}")

        try:
            evaluate_isolated(
                run.run_dir, n=n, progress=report, use_cache=not recompute, cache_dir=str(extractor_cache())
            )
        except UserError as exc:
            failures.append(str(exc))
    bar.progress(1.0, text="Done: the metrics are stored in each run's metrics.json.")
    if failures:
        raise UserError(" | ".join(failures))


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
            compute(todo, n, recompute)
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
            compute(list(selection.runs), n, recompute=True)
            st.rerun()


def render_tables(rows: list[dict], n: int, infos: dict[str, dict]) -> None:
    from evaluation.report import HEADLINE_KEYS, summary_frame

    st.markdown(f"**Headline metrics at n = {n}** (↑ higher is better, ↓ lower is better; [95 % interval])")
    st.table(summary_frame(rows, HEADLINE_KEYS, drop_not_applicable=True), hide_index=True)
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
        },
        "metrics_part",
    )
    with st.expander("What the metrics mean"):
        st.markdown(EXPLANATION)
