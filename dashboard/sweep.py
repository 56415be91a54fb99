"""Tab 7 — β sweep: runs of one model and one recipe at several β: rate (KL) against distortion (reconstruction)
and FID against β. Runs of different models, options or budgets are never drawn on one curve."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evaluation import load_metrics
from evaluation.diagnostics import rate_distortion_point
from evaluation.metric_specs import metric
from generators.checkpoints import read_history
from generators.default_runs import default_recipe
from generators.registry import MODELS, command_line_options

from . import export, jobs
from .metrics import comparison_n, compute
from .state import Run, Selection, checkpoints_dir, scan_runs
from .training import SWEEP_PREFIX, command_args

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


# train settings that do not change what a run learns (where its files are, which device, how often it logs)
NOT_RECIPE = {"data_dir", "device", "log_every", "dataset"}


@dataclass(frozen=True)
class Sweep:
    """Runs of one model and one recipe that differ only in β: model, dataset, every model option but β, the
    training settings and the steps reached. ``runs``: β -> run (the first by name when several)."""

    model: str
    dataset: str
    recipe: dict
    runs: dict[float, Run]

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

    def train_args(self, beta: float) -> list[str]:
        """The ``python -m generators train`` arguments of one more point: this recipe at ``beta``."""
        options = command_line_options(self.model, self.recipe["model_config"])
        train = self.recipe["train_config"]
        args = command_args(
            self.model, self.dataset, "steps", self.steps, {**options, "beta": beta}, train["seed"], train["batch_size"]
        )
        for flag in ("image_size", "channels"):
            if train.get(flag) is not None:
                args += [f"--{flag.replace('_', '-')}", str(train[flag])]
        return args


def recipe_of(run: Run) -> dict:
    """Everything that shapes what ``run`` learnt except β (what a β sweep must hold fixed)."""
    info = run.info
    return {
        "model": info["model"],
        "dataset": info["dataset"],
        "model_config": {k: v for k, v in info["model_config"].items() if k != "beta"},
        "train_config": {k: v for k, v in info.get("train_config", {}).items() if k not in NOT_RECIPE},
        "step": int(info.get("step", 0)),
    }


def sweeps(runs: list[Run], dataset: str) -> list[Sweep]:
    """The finished runs with a posterior and a β on ``dataset``, grouped by recipe; most β values first."""
    groups: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.name):
        if run.capabilities.posterior and run.beta is not None and run.info["dataset"] == dataset and not run.training:
            groups.setdefault(json.dumps(recipe_of(run), sort_keys=True), []).append(run)
    found = []
    for members in groups.values():
        by_beta: dict[float, Run] = {}
        for run in members:
            by_beta.setdefault(run.beta, run)
        recipe = recipe_of(members[0])
        found.append(Sweep(recipe["model"], dataset, recipe, dict(sorted(by_beta.items()))))
    return sorted(found, key=lambda sweep: (-len(sweep.runs), sweep.label))


def new_sweep(model: str, dataset: str) -> Sweep:
    """A sweep with no runs yet: ``model``'s committed recipe (its defaults when it has none), DEFAULT_SWEEP_STEPS."""
    recipe = default_recipe(model, checkpoints_dir())
    options = dict(recipe["options"]) if recipe else {}
    options.pop("beta", None)
    train = {"batch_size": recipe["batch_size"] if recipe else 128, "seed": 0}
    return Sweep(model, dataset, {"model_config": options, "train_config": train, "step": DEFAULT_SWEEP_STEPS}, {})


def largest_sweep(runs: list[Run], dataset: str) -> dict[float, Run]:
    """The sweep with the most β values (what the report exports): one model, one recipe."""
    found = sweeps(runs, dataset)
    return found[0].runs if found else {}


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
    c1, c2, c3 = st.columns([2, 3, 1])
    betas = c1.multiselect("β values", BETA_CHOICES, default=[0.5, 1.0, 4.0], key="sweep_betas")
    dataset = c3.selectbox("Dataset", ["mnist5k"], key="sweep_dataset")
    found = sweeps(all_runs, dataset)
    options = {sweep.label: sweep for sweep in found}
    options |= {
        f"new: {sweep.label.rsplit(' — ', 1)[0]}": sweep for sweep in map(lambda m: new_sweep(m, dataset), models)
    }
    sweep = options[
        c2.selectbox(
            "Sweep (one model and one recipe; only β differs)",
            list(options),
            key="sweep_recipe",
            help="Only runs of the same model, options, training settings and steps are drawn together.",
        )
    ]
    if len(found) > 1:
        st.caption(
            "Not drawn (other models or recipes): "
            + "; ".join(f"{other.label}" for other in found if other is not sweep)
            + ". Pick one above to see it."
        )
    existing = sweep.runs
    missing = [beta for beta in betas if beta not in existing]
    if missing:
        st.caption(
            "Reused: "
            + (", ".join(f"β={b:g} → {r.name}" for b, r in existing.items() if b in betas) or "none")
            + ". To train: "
            + ", ".join(f"β={b:g}" for b in missing)
            + f" (this recipe, {sweep.steps} steps each, one after the other)."
        )
        title = MODELS[sweep.model].title
        if st.button(f"Train {len(missing)} {title} run(s) of {sweep.steps} steps", key="sweep_start"):
            for beta in missing:
                run = f"{SWEEP_PREFIX}{jobs.unique_run_name(sweep.model, dataset)}-beta{beta:g}"
                jobs.submit(sweep.train_args(beta), run, queued=True)
            st.rerun()
    else:
        st.caption(f"Every chosen β already has a run of this recipe ({sweep.steps} steps); they are reused.")
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
