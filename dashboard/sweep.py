"""Tab 7 — β sweep: short VAE runs at several β, rate (KL) against distortion (reconstruction) and FID against β."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from generators.checkpoints import read_history

from . import jobs
from .metrics import compute, stored_row
from .state import Run, Selection, scan_runs
from .training import SWEEP_PREFIX

BETA_CHOICES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SWEEP_METRICS_N = 1000
TAIL_FRACTION = 0.1  # rate and distortion: mean of the last 10 % of logged steps (less noisy than the last step)

EXPLANATION = """
The VAE loss is **distortion + β · rate**: distortion is the reconstruction error, rate is KL(q(z|x) ‖ p(z)),
the number of nats the code spends on each image. β = 1 is the true ELBO. A **larger β** makes information in
the code expensive: the rate drops, more latent dimensions switch off, the codes fill N(0, I) more evenly
(prior samples and interpolations get cleaner), but reconstructions get blurrier and lose detail. A **smaller
β** does the opposite and drifts towards a plain autoencoder. No β is best at both: the curve of (rate,
distortion) points is the trade-off (Alemi et al. 2018, "Fixing a broken ELBO").
"""


def beta_of(run: Run) -> float:
    return float(run.info["model_config"].get("beta", 1.0))


def sweep_runs(runs: list[Run], dataset: str) -> dict[float, Run]:
    """One VAE run per β on ``dataset``: the one trained longest when there are several."""
    chosen: dict[float, Run] = {}
    for run in runs:
        if run.model_name != "vae" or run.info["dataset"] != dataset or run.training:
            continue
        beta = beta_of(run)
        if beta not in chosen or run.info.get("step", 0) > chosen[beta].info.get("step", 0):
            chosen[beta] = run
    return dict(sorted(chosen.items()))


def rate_distortion(by_beta: dict[float, Run]) -> pd.DataFrame:
    """Per run: β, rate (KL, nats) and distortion (reconstruction loss, nats) at the end of training."""
    points = []
    for beta, run in by_beta.items():
        history = pd.DataFrame(read_history(run.run_dir))
        if history.empty or not {"kl", "recon"} <= set(history.columns):
            continue
        tail = history.iloc[-max(1, int(len(history) * TAIL_FRACTION)) :]
        points.append(
            {
                "β": beta,
                "label": f"β={beta:g}",
                "rate (KL, nats)": tail["kl"].mean(),
                "distortion (recon, nats)": tail["recon"].mean(),
                "run": run.name,
                "steps": int(run.info.get("step", 0)),
            }
        )
    return pd.DataFrame(points)


def sweep_figures(by_beta: dict[float, Run]) -> dict[str, go.Figure]:
    figures = {}
    points = rate_distortion(by_beta)
    if not points.empty:
        figure = px.line(
            points,
            x="rate (KL, nats)",
            y="distortion (recon, nats)",
            text="label",
            markers=True,
            hover_data=["run", "steps"],
            height=400,
            title="Rate–distortion: each point is one VAE, labelled by its β",
        )
        figure.update_traces(textposition="top center")
        figures["beta_rate_distortion"] = figure
    rows = [(beta, stored_row(run)) for beta, run in by_beta.items()]
    measured = pd.DataFrame(
        [
            {"β": beta, "FID": row["fid"], "run": row.get("run")}
            for beta, row in rows
            if row and row.get("fid") is not None
        ]
    )
    if not measured.empty:
        figure = px.line(
            measured,
            x="β",
            y="FID",
            markers=True,
            log_x=True,
            hover_data=["run"],
            height=360,
            title="FID of prior samples against β (lower is better)",
        )
        figures["beta_fid"] = figure
    return figures


def render(selection: Selection) -> None:
    all_runs, _broken = scan_runs()
    c1, c2, c3 = st.columns([3, 1, 1])
    betas = c1.multiselect("β values", BETA_CHOICES, default=[0.5, 1.0, 4.0], key="sweep_betas")
    steps = c2.number_input("Steps per run", 10, 20_000, 600, 100, key="sweep_steps")
    dataset = c3.selectbox("Dataset", ["mnist5k"], key="sweep_dataset")
    existing = sweep_runs(all_runs, dataset)
    missing = [beta for beta in betas if beta not in existing]
    if missing:
        st.caption(
            "Reused: "
            + (", ".join(f"β={b:g} → {r.name}" for b, r in existing.items() if b in betas) or "none")
            + ". To train: "
            + ", ".join(f"β={b:g}" for b in missing)
            + " (one after the other)."
        )
        if st.button(f"Train {len(missing)} VAE run(s) of {steps} steps", key="sweep_start"):
            for beta in missing:
                run = f"{SWEEP_PREFIX}{jobs.unique_run_name('vae', dataset)}-beta{beta:g}"
                jobs.submit(
                    ["vae", "--dataset", dataset, "--steps", str(int(steps)), "--beta", f"{beta:g}"], run, queued=True
                )
            st.rerun()
    else:
        st.caption("Every chosen β already has a VAE run; they are reused.")
    jobs.monitor(lambda job: job.run.startswith(SWEEP_PREFIX))
    chosen = {beta: run for beta, run in existing.items() if beta in betas}
    figures = sweep_figures(chosen)
    for name, figure in figures.items():
        st.plotly_chart(figure, key=f"sweep-{name}")
    unmeasured = [run for run in chosen.values() if stored_row(run) is None]
    if unmeasured:
        st.info("FID against β needs metrics for: " + ", ".join(run.name for run in unmeasured) + ".")
        if st.button(f"Compute their metrics ({SWEEP_METRICS_N} samples each)", key="sweep_metrics"):
            compute(unmeasured, SWEEP_METRICS_N, recompute=False)
            st.rerun()
    with st.expander("The β trade-off"):
        st.markdown(EXPLANATION)
