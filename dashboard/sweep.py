"""Tab — Sweeps: runs of one model and one recipe that differ in one setting (β, latent size, training-set size,
steps…): any measured metric against the setting, with a 95 % interval over training seeds; for β also rate (KL)
against distortion (reconstruction), and more β points trained from here. Runs that differ in anything else are
never drawn on one curve. The sweeps and their figures are ``evaluation.sweeps``; this tab draws them."""

from __future__ import annotations

import dataclasses

import streamlit as st

from evaluation.metric_specs import metric
from evaluation.rows import comparison_n
from evaluation.sweeps import (
    Sweep,
    measured_metrics,
    setting_sweeps,
    setting_title,
    sweep_figures,
    sweep_metric_figure,
    sweeps,
    swept_settings,
)
from generators.default_runs import DEFAULT_DATASET, default_recipe
from generators.registry import MODELS, command_line_options

from . import export, jobs
from .compute import compute_metrics
from .jobs import SWEEP_PREFIX, command_args
from .state import Selection, checkpoints_dir, scan_runs

BETA_CHOICES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
PROPOSED_BETAS = (0.5, 1.0, 4.0)  # a new sweep's points: below, at and above the plain VAE
SWEEP_METRICS_N = 1000
DEFAULT_SWEEP_STEPS = 600

EXPLANATION = """
The VAE loss is **distortion + β · rate**: distortion is the reconstruction error, rate is KL(q(z|x) ‖ p(z)),
the information the code spends on each image (the chart shows it in bits, KL / ln 2, the unit of the
Reconstruction tab's compression experiment). β = 1 is the true ELBO. A **larger β** makes information in
the code expensive: the rate drops, more latent dimensions switch off, the codes fill N(0, I) more evenly
(prior samples and interpolations get cleaner), but reconstructions get blurrier and lose detail. A **smaller
β** does the opposite and drifts towards a plain autoencoder. No β is best at both: the curve of (rate,
distortion) points is the trade-off (Alemi et al. 2018, "Fixing a broken ELBO").
"""


def beta_models() -> list[str]:
    """Registered models that declare a β (a posterior and a KL weight): the ones a β sweep can train."""
    return [name for name, cls in MODELS.items() if cls.has_posterior and cls.has_beta]


def train_args(sweep: Sweep, beta: float) -> list[str]:
    """The ``python -m generators train`` arguments of one more point: ``sweep``'s recipe at ``beta``."""
    options = command_line_options(sweep.model, sweep.recipe["model_config"])
    train = sweep.recipe["train_config"]
    args = command_args(
        sweep.model,
        sweep.dataset,
        "steps",
        sweep.steps,
        {**options, "beta": beta},
        train["seed"],
        train["batch_size"],
        precision=train.get("precision") or "fp32",
    )
    for flag in ("image_size", "channels", "lr_schedule"):
        if train.get(flag) is not None:
            args += [f"--{flag.replace('_', '-')}", str(train[flag])]
    return args


def new_sweep(model: str, dataset: str) -> Sweep:
    """A sweep with no runs yet: ``model``'s committed recipe (its defaults when it has none), DEFAULT_SWEEP_STEPS."""
    recipe = default_recipe(model, checkpoints_dir(), dataset)
    options = dict(recipe["options"]) if recipe else {}
    options.pop("beta", None)
    train = {"batch_size": recipe["batch_size"] if recipe else 128, "seed": 0}
    if recipe and recipe.get("precision"):
        train["precision"] = recipe["precision"]
    return Sweep(model, dataset, {"model_config": options, "train_config": train, "step": DEFAULT_SWEEP_STEPS}, {})


def render(selection: Selection) -> None:
    all_runs, _broken = scan_runs()
    dataset = selection.runs[0].info["dataset"] if selection.runs else DEFAULT_DATASET
    st.caption(f"Sweeps of the runs on **{dataset}**, the data set chosen in the sidebar.")
    settings = list(dict.fromkeys(["beta", *swept_settings(all_runs, dataset)]))
    setting = st.selectbox(
        "Swept setting",
        settings,
        format_func=setting_title,
        key="sweep_setting",
        help="The settings along which some runs differ in nothing else (training seeds aside). Train a sweep "
        "with `python -m generators sweep MODEL --set train_size=500,1000,2000 --seeds 0 1 --steps 2000`.",
    )
    chosen = None
    if setting == "beta":
        chosen = render_beta(all_runs, dataset)
        st.subheader("Any metric against β")
    render_metric_against(all_runs, dataset, setting, only=chosen)


def render_metric_against(all_runs, dataset: str, setting: str, only: list | None = None) -> None:
    """Any measured metric of one sweep against its setting, with a 95 % interval over training seeds; ``only``:
    the values to draw (the β values chosen above), None = all."""
    found = [sweep for sweep in setting_sweeps(all_runs, dataset, setting) if len(sweep.points) > 1]
    if not found:
        st.info(
            f"No runs on {dataset} differ only in {setting_title(setting)} yet. Train some with `python -m generators "
            f"sweep MODEL --set {setting}=V1,V2,… --seeds 0 1 --steps N`."
        )
        return
    c1, c2 = st.columns([3, 1])
    by_label = {sweep.label: sweep for sweep in found}
    sweep = by_label[
        c1.selectbox(
            f"Runs that differ only in {setting_title(setting)} and seed",
            list(by_label),
            key=f"sweep_group_{setting}",
            help="Points are joined only when everything but this setting and the training seed is equal.",
        )
    ]
    if only is not None:
        st.caption(f"Drawn: the {setting_title(setting)} values chosen in the box above.")
        sweep = dataclasses.replace(sweep, points={v: runs for v, runs in sweep.points.items() if v in only})
        if not sweep.points:
            st.info(f"None of the chosen {setting_title(setting)} values has a run of this recipe.")
            return
    keys = measured_metrics(sweep)  # none until every run of the sweep has metrics at one shared n
    if not keys:
        st.info(f"These runs need metrics at one shared n first; compute them at n = {SWEEP_METRICS_N}.")
        if st.button(f"Compute their metrics ({SWEEP_METRICS_N} samples each)", key=f"sweep_metrics_{setting}"):
            compute_metrics(
                [run for members in sweep.points.values() for run in members], SWEEP_METRICS_N, recompute=False
            )
            st.rerun()
        return
    # FID against β is drawn above already: under it, this chart opens on what a β sweep is about on its data
    preferred = ("mig", "recall", "fid") if setting == "beta" else ("fid",)
    first = next((keys.index(k) for k in preferred if k in keys), 0)
    key = c2.selectbox(
        "Metric", keys, index=first, format_func=lambda k: metric(k).label, key=f"sweep_metric_{setting}"
    )
    figure = sweep_metric_figure(sweep, key)
    if figure is not None:
        export.chart(figure, f"sweep-{setting}-{key}", f"sweep-{setting}-{key}")


def render_beta(all_runs, dataset: str) -> list[float] | None:
    """The β trade-off: rate against distortion and FID against β for one recipe, and more β points to train.
    Returns the β values chosen (None when no model can be swept)."""
    models = beta_models()
    if not models:
        st.info("No registered model has a posterior and a β option, so there is nothing to sweep.")
        return None
    c1, c2 = st.columns([2, 4])
    sweep = beta_sweep_choice(c2, all_runs, dataset, models)
    # every β the sweep already has a run of is drawn, beside the classic three to train
    proposed = sorted(set(sweep.runs) | set(PROPOSED_BETAS))
    choices = sorted(set(BETA_CHOICES) | set(sweep.runs))
    betas = c1.multiselect("β values", choices, default=proposed, key="sweep_betas")
    render_missing_betas(sweep, betas, dataset)
    jobs.monitor(lambda job: job.run.startswith(SWEEP_PREFIX))
    chosen = {beta: run for beta, run in sweep.runs.items() if beta in betas}
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
            compute_metrics(unmeasured, SWEEP_METRICS_N, recompute=False)
            st.rerun()
    with st.expander("The β trade-off"):
        st.markdown(EXPLANATION)
    return betas


def beta_sweep_choice(column, all_runs, dataset: str, models: list[str]) -> Sweep:
    """The β sweep to draw and extend: one found among the runs, or a new one of a model's committed recipe."""
    found = sweeps(all_runs, dataset)
    options = {sweep.label: sweep for sweep in found}
    options |= {
        f"new: {sweep.label.rsplit(' — ', 1)[0]}": sweep for sweep in map(lambda m: new_sweep(m, dataset), models)
    }
    sweep = options[
        column.selectbox(
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
    return sweep


def render_missing_betas(sweep: Sweep, betas: list[float], dataset: str) -> None:
    """Which chosen β values reuse a run and which are still to train, and a button that queues the latter."""
    existing = sweep.runs
    missing = [beta for beta in betas if beta not in existing]
    if not missing:
        st.caption(f"Every chosen β already has a run of this recipe ({sweep.steps} steps); they are reused.")
        return
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
            jobs.submit(train_args(sweep, beta), run, queued=True)
        st.rerun()
