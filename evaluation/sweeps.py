"""β sweeps: runs of one model and one recipe that differ only in β, and their figures — rate (KL) against
distortion (reconstruction) and FID against β. Runs of different models, options or budgets are never drawn on
one curve. The dashboard's β sweep tab and the report zip draw these figures."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from generators.checkpoints import read_history
from generators.registry import MODELS

from .diagnostics import HISTORY_TAIL_FRACTION, rate_distortion_point
from .metric_specs import metric
from .rows import comparison_n, row_at

# train settings that do not change what a run learns (where its files are, which device, how often it logs)
NOT_RECIPE = {"data_dir", "device", "log_every", "dataset"}


@dataclass(frozen=True)
class Sweep:
    """Runs of one model and one recipe that differ only in β: model, dataset, every model option but β, the
    training settings and the steps reached. ``runs``: β -> run (the first by name when several)."""

    model: str
    dataset: str
    recipe: dict
    runs: dict

    @property
    def steps(self) -> int:
        return int(self.recipe["step"])

    @property
    def label(self) -> str:
        options = self.recipe["model_config"]
        train = self.recipe["train_config"]
        betas = ", ".join(f"{beta:g}" for beta in self.runs)
        return (
            f"{MODELS[self.model].title if self.model in MODELS else self.model}, z = {options.get('latent_dim')}, "
            f"{self.steps} steps, batch {train.get('batch_size')}, seed {train.get('seed')} — β {betas or 'none yet'}"
        )


def recipe_of(run) -> dict:
    """Everything that shapes what ``run`` learnt except β (what a β sweep must hold fixed)."""
    info = run.info
    return {
        "model": info["model"],
        "dataset": info["dataset"],
        "model_config": {k: v for k, v in info["model_config"].items() if k != "beta"},
        "train_config": {k: v for k, v in info.get("train_config", {}).items() if k not in NOT_RECIPE},
        "step": int(info.get("step", 0)),
    }


def sweeps(runs, dataset: str) -> list[Sweep]:
    """The finished runs with a posterior and a β on ``dataset``, grouped by recipe; most β values first."""
    groups: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: r.name):
        if run.capabilities.posterior and run.beta is not None and run.info["dataset"] == dataset and not run.training:
            groups.setdefault(json.dumps(recipe_of(run), sort_keys=True), []).append(run)
    found = []
    for members in groups.values():
        by_beta: dict = {}
        for run in members:
            by_beta.setdefault(run.beta, run)
        recipe = recipe_of(members[0])
        found.append(Sweep(recipe["model"], dataset, recipe, dict(sorted(by_beta.items()))))
    return sorted(found, key=lambda sweep: (-len(sweep.runs), sweep.label))


def largest_sweep(runs, dataset: str) -> dict:
    """The sweep with the most β values (what the report exports): one model, one recipe."""
    found = sweeps(runs, dataset)
    return found[0].runs if found else {}


def rate_distortion(by_beta: dict) -> pd.DataFrame:
    """Per run: β, rate and distortion at the end of training (evaluation.diagnostics), ordered by rate."""
    points = []
    for beta, run in by_beta.items():
        point = rate_distortion_point(pd.DataFrame(read_history(run.run_dir)))
        if point is not None:
            points.append({"β": beta, "label": f"β={beta:g}", **point, "run": run.name})
    return pd.DataFrame(points).sort_values("rate") if points else pd.DataFrame()


def log_beta_axis(betas) -> dict:
    """A log β axis whose ticks read the β values themselves (0.5, not "5")."""
    return {"type": "log", "title": "β (log scale)", "tickvals": list(betas), "ticktext": [f"{b:g}" for b in betas]}


def sweep_figures(by_beta: dict) -> dict[str, go.Figure]:
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
            title=(
                "Rate–distortion: one point per β, joined in order of rate<br><sup>means over the training batches "
                f"of the last {HISTORY_TAIL_FRACTION:.0%} of each run's steps (history.csv)</sup>"
            ),
            margin={"t": 90},
        )
        figure.update_yaxes(autorange=True, rangemode="normal")
        figure.update_traces(cliponaxis=False)  # a point's β label at the top edge stays readable
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
