"""Tab 7 — β sweep: VAE runs at several β and one training budget: rate (KL) against distortion (reconstruction)
and FID against β. Runs of different budgets are never drawn on one curve."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evaluation import load_metrics
from evaluation.diagnostics import rate_distortion_point
from evaluation.metric_specs import metric
from generators.checkpoints import read_history
from generators.registry import MODELS

from . import export, jobs
from .metrics import comparison_n, compute
from .state import Run, Selection, scan_runs
from .training import SWEEP_PREFIX

BETA_CHOICES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SWEEP_METRICS_N = 1000
DEFAULT_SWEEP_STEPS = 600

EXPLANATION = """
The VAE loss is **distortion + β · rate**: distortion is the reconstruction error, rate is KL(q(z|x) ‖ p(z)),
the number of nats the code spends on each image. β = 1 is the true ELBO. A **larger β** makes information in
the code expensive: the rate drops, more latent dimensions switch off, the codes fill N(0, I) more evenly
(prior samples and interpolations get cleaner), but reconstructions get blurrier and lose detail. A **smaller
β** does the opposite and drifts towards a plain autoencoder. No β is best at both: the curve of (rate,
distortion) points is the trade-off (Alemi et al. 2018, "Fixing a broken ELBO").
"""


def beta_models() -> list[str]:
    """Registered models with a posterior and a β option: the ones a β sweep can train."""
    return [
        name
        for name, cls in MODELS.items()
        if cls.has_posterior and "beta" in {f.name for f in dataclasses.fields(cls.Config)}
    ]


def sweep_candidates(runs: list[Run], dataset: str) -> list[Run]:
    """Finished runs with a posterior and a β on ``dataset``."""
    return [
        run
        for run in runs
        if run.capabilities.posterior and run.beta is not None and run.info["dataset"] == dataset and not run.training
    ]


def budgets(candidates: list[Run]) -> Counter:
    """Training steps -> how many runs were trained that long."""
    return Counter(int(run.info.get("step", 0)) for run in candidates)


def sweep_runs(candidates: list[Run], steps: int) -> dict[float, Run]:
    """One run per β among those trained for exactly ``steps`` steps (the first by name when several)."""
    chosen: dict[float, Run] = {}
    for run in sorted(candidates, key=lambda r: r.name):
        if int(run.info.get("step", 0)) == steps:
            chosen.setdefault(run.beta, run)
    return dict(sorted(chosen.items()))


def largest_sweep(runs: list[Run], dataset: str) -> dict[float, Run]:
    """The sweep of the training budget with the most β values (what the report exports)."""
    candidates = sweep_candidates(runs, dataset)
    counts = budgets(candidates)
    return sweep_runs(candidates, max(counts, key=counts.get)) if counts else {}


def rate_distortion(by_beta: dict[float, Run]) -> pd.DataFrame:
    """Per run: β, rate and distortion at the end of training (evaluation.diagnostics), ordered by rate."""
    points = []
    for beta, run in by_beta.items():
        point = rate_distortion_point(pd.DataFrame(read_history(run.run_dir)))
        if point is not None:
            points.append({"β": beta, "label": f"β={beta:g}", **point, "run": run.name})
    return pd.DataFrame(points).sort_values("rate") if points else pd.DataFrame()


def row_at(run: Run, n: int) -> dict | None:
    """The run's stored prior-sampler row at exactly ``n`` samples, or None."""
    rows = [
        row for row in load_metrics(run.run_dir).values() if row.get("n_fake") == n and row.get("sampler") == "prior"
    ]
    return rows[0] if rows else None


def log_beta_axis(betas) -> dict:
    """A log β axis whose ticks read the β values themselves (0.5, not "5")."""
    return {"type": "log", "title": "β (log scale)", "tickvals": list(betas), "ticktext": [f"{b:g}" for b in betas]}


def sweep_figures(by_beta: dict[float, Run]) -> dict[str, go.Figure]:
    """Rate–distortion, and FID against β at the largest n every run of the sweep has a prior row at."""
    figures = {}
    n = comparison_n(list(by_beta.values()))
    points = rate_distortion(by_beta)
    if not points.empty:
        figure = go.Figure(
            go.Scatter(
                x=points["rate"],
                y=points["distortion"],
                text=points["label"],
                mode="lines+markers+text",
                textposition="top center",
                customdata=points[["run"]],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
        figure.update_layout(
            height=400,
            xaxis_title="rate: KL(q(z|x) ‖ p(z)) (nats/image)",
            yaxis_title="distortion: reconstruction loss (nats/image)",
            title="Rate–distortion: one point per β, joined in order of rate",
        )
        figures["beta_rate_distortion"] = figure
    fid = metric("fid")
    measured = (
        []
        if n is None
        else [(beta, row) for beta, run in by_beta.items() if (row := row_at(run, n)) and row.get("fid") is not None]
    )
    if measured:
        betas = [beta for beta, _ in measured]
        low = [row["fid"] - row["fid_ci_low"] if row.get("fid_ci_low") is not None else 0 for _, row in measured]
        high = [row["fid_ci_high"] - row["fid"] if row.get("fid_ci_high") is not None else 0 for _, row in measured]
        figure = go.Figure(
            go.Scatter(
                x=betas,
                y=[row["fid"] for _, row in measured],
                mode="lines+markers",
                error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
                text=[row.get("run") for _, row in measured],
            )
        )
        figure.update_layout(
            height=360,
            xaxis=log_beta_axis(betas),
            yaxis_title=f"{fid.axis_title}, n = {n}",
            title=f"FID of prior samples against β ({fid.title}; all at n = {n})",
        )
        figures["beta_fid"] = figure
    return figures


def render(selection: Selection) -> None:
    all_runs, _broken = scan_runs()
    models = beta_models()
    if not models:
        st.info("No registered model has a posterior and a β option, so there is nothing to sweep.")
        return
    c1, c2, c3 = st.columns([3, 1, 1])
    betas = c1.multiselect("β values", BETA_CHOICES, default=[0.5, 1.0, 4.0], key="sweep_betas")
    dataset = c3.selectbox("Dataset", ["mnist5k"], key="sweep_dataset")
    candidates = sweep_candidates(all_runs, dataset)
    counts = budgets(candidates)
    options = sorted(set(counts) | {DEFAULT_SWEEP_STEPS})
    default = max(options, key=lambda steps: (counts.get(steps, 0), -abs(steps - DEFAULT_SWEEP_STEPS)))
    steps = c2.selectbox(
        "Training budget (steps)",
        options,
        index=options.index(default),
        key="sweep_steps",
        help="Only runs trained for exactly this many steps are drawn together.",
    )
    existing = sweep_runs(candidates, steps)
    others = sorted(counts.keys() - {steps})
    if others:
        st.caption(
            "Not drawn (other training budgets): "
            + ", ".join(f"{counts[s]} run(s) of {s} steps" for s in others)
            + ". Pick their budget above to see them."
        )
    model = models[0] if not existing else next(iter(existing.values())).model_name
    missing = [beta for beta in betas if beta not in existing]
    if missing:
        st.caption(
            "Reused: "
            + (", ".join(f"β={b:g} → {r.name}" for b, r in existing.items() if b in betas) or "none")
            + ". To train: "
            + ", ".join(f"β={b:g}" for b in missing)
            + f" ({steps} steps each, one after the other)."
        )
        title = MODELS[model].title
        if st.button(f"Train {len(missing)} {title} run(s) of {steps} steps", key="sweep_start"):
            for beta in missing:
                run = f"{SWEEP_PREFIX}{jobs.unique_run_name(model, dataset)}-beta{beta:g}"
                jobs.submit(
                    [model, "--dataset", dataset, "--steps", str(int(steps)), "--beta", f"{beta:g}"], run, queued=True
                )
            st.rerun()
    else:
        st.caption(f"Every chosen β already has a run of {steps} steps; they are reused.")
    jobs.monitor(lambda job: job.run.startswith(SWEEP_PREFIX))
    chosen = {beta: run for beta, run in existing.items() if beta in betas}
    for name, figure in sweep_figures(chosen).items():
        export.chart(figure, f"{name}-{len(chosen)}-runs", f"sweep-{name}")
    unmeasured = [] if comparison_n(list(chosen.values())) else list(chosen.values())
    if unmeasured:
        st.info(
            f"FID against β needs metrics at one shared n; compute them at n = {SWEEP_METRICS_N} for: "
            + ", ".join(run.name for run in unmeasured)
            + "."
        )
        if st.button(f"Compute their metrics ({SWEEP_METRICS_N} samples each)", key="sweep_metrics"):
            compute(unmeasured, SWEEP_METRICS_N, recompute=False)
            st.rerun()
    with st.expander("The β trade-off"):
        st.markdown(EXPLANATION)
