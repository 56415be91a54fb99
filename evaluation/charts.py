"""The charts of the metrics and of training, as plotly figures: FID with its real-vs-real floor, precision /
recall, the class histogram, sharpness, FID against n, and each run's training curves. The dashboard draws them,
the report zip exports them (``evaluation.figures``); numbers come from the stored rows and history.csv only."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from generators.checkpoints import read_history

from .metric_specs import metric

CURVE_POINTS = 400
IGNORED_HISTORY = {"step", "epoch", "seconds", "beta"}
PROBABILITY_COLUMNS = {"d_real", "d_fake"}


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
            text=[format(row["fid"], spec.fmt) for row in rows],  # as the metric table rounds it
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
        title="FID against the number of images (FID is biased upwards at small n)",
        # FID's bias grows like 1/n_samples + 1/n_real: each point sits at the equal size with that bias
        xaxis={"title": "effective n = 2 / (1/n samples + 1/n real) (log scale)", "type": "log"},
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


def metric_figures(rows: list[dict], names=tuple(FIGURE_BUILDERS)) -> dict[str, go.Figure]:
    """The metric charts by file-friendly name (the report exports the same figures); only ``names``."""
    figures = {name: FIGURE_BUILDERS[name](rows) for name in names}
    return {name: figure for name, figure in figures.items() if figure is not None}


def history_frame(run) -> pd.DataFrame:
    """history.csv smoothed and thinned to at most ``CURVE_POINTS`` points per run."""
    frame = pd.DataFrame(read_history(run.run_dir))
    if frame.empty:
        return frame
    frame = frame[[c for c in frame.columns if not c.startswith("kl_dim_")]]
    window = max(1, len(frame) // CURVE_POINTS)
    smoothed = frame.rolling(window, min_periods=1).mean()
    smoothed["step"] = frame["step"]
    return smoothed.iloc[::window]


def training_figure(run) -> go.Figure | None:
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
