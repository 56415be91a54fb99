"""Tab 5 — Metrics: the evaluation table, its charts, and the training curves of every run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from generators.checkpoints import read_history

from .state import Run, Selection, checkpoints_dir

N_CHOICES = (500, 1000, 2000, 5000)
CURVE_POINTS = 400
TAIL_FRACTION = 0.2  # the GAN alarms look at the last 20 % of the logged steps
D_WINS_GAP = 0.8  # D(real) - D(fake) above this: D separates perfectly and G gets no useful gradient
COLLAPSE_MODE_FRACTION = 0.3  # fewer than 30 % of the classes produced: (partial) mode collapse
IGNORED_HISTORY = {"step", "epoch", "seconds", "beta"}

EXPLANATION = """
**FID** compares the feature statistics of generated and real images (lower is better). The dashed line is
the **real-vs-real floor**: the FID between two disjoint halves of real data, the best any model can reach
with this many images. **Precision** = share of samples that look like real data (quality); **recall** = share
of real data the samples cover (diversity); density and coverage are their outlier-robust versions.
**Modes** counts the classes (by the project's classifier) that receive at least 1 % of the samples.
**Sharpness** is the mean gradient energy of the samples: blurry images score low.
"""


def stored_row(run: Run) -> dict | None:
    """The stored metric row of a run made with the most samples, or None if it has none yet."""
    from evaluation import load_metrics

    rows = list(load_metrics(run.run_dir).values())
    if not rows:
        return None
    return max(rows, key=lambda row: row.get("n_fake") or 0)


def metric_rows(runs) -> list[dict]:
    rows = []
    for run in runs:
        row = stored_row(run)
        if row is not None:
            rows.append({**row, "run": run.name})
    return rows


def metrics_table(rows: list[dict]) -> pd.DataFrame:
    from evaluation.report import rows_to_frame

    return rows_to_frame(rows)


def metric_figures(rows: list[dict]) -> dict[str, go.Figure]:
    """The metric charts by file-friendly name (the report exports the same figures)."""
    figures = {}
    with_fid = [row for row in rows if row.get("fid") is not None]
    if with_fid:
        fid = go.Figure(go.Bar(x=[row["run"] for row in with_fid], y=[row["fid"] for row in with_fid], name="FID"))
        floors = [row.get("fid_floor") for row in with_fid]
        if any(floor is not None for floor in floors):
            fid.add_trace(
                go.Scatter(
                    x=[row["run"] for row in with_fid],
                    y=floors,
                    mode="lines+markers",
                    name="real-vs-real floor",
                    line={"dash": "dash", "color": "black"},
                )
            )
        fid.update_layout(title="FID (lower is better) and the real-vs-real floor", yaxis_title="FID", height=380)
        figures["fid"] = fid
    prdc = [
        {"run": row["run"], "metric": key, "value": row[key]}
        for row in rows
        for key in ("precision", "recall", "density", "coverage")
        if row.get(key) is not None
    ]
    if prdc:
        figures["precision_recall"] = px.bar(
            pd.DataFrame(prdc),
            x="metric",
            y="value",
            color="run",
            barmode="group",
            height=380,
            title="Precision / recall (quality / diversity), density / coverage",
        )
    modes = [
        {"run": row["run"], "class": str(k), "share of samples": share}
        for row in rows
        for k, share in enumerate(row.get("class_histogram") or [])
    ]
    if modes:
        figures["modes"] = px.bar(
            pd.DataFrame(modes),
            x="class",
            y="share of samples",
            color="run",
            barmode="group",
            height=380,
            title="Class histogram of the samples (a perfect model gives each class 10 %)",
        )
    sharp = [row for row in rows if row.get("sharpness") is not None]
    if sharp:
        figures["sharpness"] = px.bar(
            x=[row["run"] for row in sharp],
            y=[row["sharpness"] for row in sharp],
            labels={"x": "run", "y": "sharpness"},
            height=340,
            title="Sharpness of the samples (higher = crisper edges)",
        )
    return figures


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


def training_figures(runs) -> dict[str, go.Figure]:
    """One loss-curve chart per run, keyed ``training_<run>``."""
    figures = {}
    for run in runs:
        frame = history_frame(run)
        columns = [c for c in frame.columns if c not in IGNORED_HISTORY]
        if frame.empty or not columns:
            continue
        long = frame.melt(id_vars="step", value_vars=columns, var_name="curve", value_name="value")
        figures[f"training_{run.name}"] = px.line(
            long, x="step", y="value", color="curve", height=320, title=f"{run.label}: training curves"
        )
    return figures


def gan_alarms(run: Run, row: dict | None) -> list[str]:
    """Plain-language warnings when the discriminator wins outright or the generator collapses."""
    alarms = []
    frame = pd.DataFrame(read_history(run.run_dir))
    if {"d_real", "d_fake"} <= set(frame.columns) and len(frame):
        tail = frame.iloc[-max(1, int(len(frame) * TAIL_FRACTION)) :]
        gap = float(tail["d_real"].mean() - tail["d_fake"].mean())
        if gap > D_WINS_GAP:
            alarms.append(
                f"{run.name}: the discriminator wins outright (D(real) − D(fake) = {gap:.2f} over the "
                "last steps), so the generator gets almost no gradient. Try --diffaug, --spectral-norm "
                "or a lower --lr-d."
            )
    classes = len(run.info.get("class_names") or [])
    if row and row.get("modes") is not None and classes and row["modes"] < classes * COLLAPSE_MODE_FRACTION:
        alarms.append(
            f"{run.name}: the generator has collapsed onto {row['modes']} of {classes} classes (mode collapse)."
        )
    return alarms


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


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    rows = metric_rows(selection.runs)
    missing = [run for run in selection.runs if run.name not in {row["run"] for row in rows}]
    with st.form("compute_metrics"):
        st.markdown(
            "**Compute the metrics** (FID, precision/recall, modes, reconstruction, likelihood, …). "
            "The first time, a small classifier is trained as the feature extractor (about a minute)."
        )
        c1, c2 = st.columns(2)
        n = c1.select_slider(
            "Samples per run",
            N_CHOICES,
            value=1000,
            key="metrics_n",
            help="5000 gives the stable numbers used in reports; 500 is a quick look.",
        )
        recompute = c2.checkbox("Also recompute runs that have metrics", key="metrics_recompute")
        if st.form_submit_button("Compute"):
            todo = list(selection.runs) if recompute else missing
            if todo:
                compute(todo, n, recompute)
                st.rerun()
            st.info("Every selected run already has stored metrics; tick the box to recompute them.")
    if missing:
        st.info("No stored metrics yet for: " + ", ".join(run.name for run in missing) + ".")
    if rows:
        st.dataframe(metrics_table(rows), hide_index=True, key="metrics-table")
        for name, figure in metric_figures(rows).items():
            st.plotly_chart(figure, key=f"metrics-{name}")
    by_run = {row["run"]: row for row in rows}
    st.subheader("Training curves")
    for run in selection.runs:
        for alarm in gan_alarms(run, by_run.get(run.name)) if run.model_name == "dcgan" else []:
            st.warning(alarm)
    for name, figure in training_figures(selection.runs).items():
        st.plotly_chart(figure, key=f"metrics-{name}")
    with st.expander("What the metrics mean"):
        st.markdown(EXPLANATION)
