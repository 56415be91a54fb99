"""Tab 6 — Train: start a run in a separate process, watch its progress, cancel it (the checkpoint is kept)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from generators.checkpoints import read_run_info
from generators.data import SPRITE_SETS, TORCHVISION_SETS
from generators.default_runs import default_recipe
from generators.registry import MODELS

from . import jobs, sidebar
from .compute import compute_metrics
from .jobs import SWEEP_PREFIX, command_args
from .state import Selection, checkpoints_dir, scan_runs

DATASETS = ("mnist5k", *SPRITE_SETS, *TORCHVISION_SETS)
BUDGETS = {"steps": (10, 100_000, 600), "epochs": (1, 500, 5), "minutes": (1, 600, 2)}


def time_estimate(recipe: dict | None, budget: str, amount: float) -> str:
    """About how long the run takes, from the default run's measured seconds per step."""
    if budget == "minutes":
        return f"about {amount:g} min"
    if not recipe or not recipe.get("seconds") or not recipe.get("steps"):
        return "no estimate (no default run of this model to time it by)"
    per_step = recipe["seconds"] / recipe["steps"]
    steps_per_epoch = recipe["steps"] / recipe["epochs"] if recipe.get("epochs") else 4500 // recipe["batch_size"]
    steps = amount if budget == "steps" else amount * steps_per_epoch
    trained = f"{recipe['run']} ({recipe['dataset']})"
    return (
        f"about {per_step * steps:.0f} s of training steps on a machine like the one that trained {trained}, "
        "plus starting up (loading the data, building the model) and a preview and checkpoint each epoch, which "
        "take longer than the steps of a short run"
    )


def add_to_comparison(run_dir: Path) -> None:
    """Select a finished run in the sidebar, with its data set (a callback: widget state may only change before
    the widget runs)."""
    sidebar.compare(run_dir.name, read_run_info(run_dir)["dataset"])


def render_finished(job) -> None:
    """What to do with a run that has ended: compare it, score it, and train it on — a cancelled run to the budget
    it was started with (from the checkpoint it kept), a finished one for more steps."""
    if job.status not in ("finished", "cancelled") or not (job.run_dir / "model.safetensors").is_file():
        return
    c1, c2, c3 = st.columns(3)
    if c1.button("Add to the comparison", key=f"add-{job.run}", on_click=add_to_comparison, args=(job.run_dir,)):
        st.rerun(scope="app")  # this part is a fragment: the sidebar and every tab must see the new selection
    if c2.button("Compute its metrics (n = 1000)", key=f"metrics-{job.run}"):
        run = next((r for r in scan_runs()[0] if r.name == job.run), None)
        if run is not None:
            compute_metrics([run], 1000, recompute=False)
            st.success(f"Metrics of {job.run} stored; see the Metrics tab.")
    if job.status == "cancelled":
        if c3.button("Resume it to the budget it was started with", key=f"resume-{job.run}"):
            jobs.submit([job.args[0], "--resume"], job.run, resume=True)  # no budget given: the run's own
            st.rerun()
        return
    more = c3.number_input("More steps", 10, 100_000, 600, key=f"more-{job.run}")
    if c3.button("Resume it for more steps", key=f"resume-{job.run}"):
        steps = int(job.last_steps or 0) + int(more)
        jobs.submit([job.args[0], "--resume", "--steps", str(steps)], job.run, resume=True)
        st.rerun()


def render(selection: Selection) -> None:
    st.markdown(
        "Training runs in its own process (one process: for several, use `torchrun` from a terminal — see the "
        "README): keep using the other tabs meanwhile. A cancelled run keeps its last checkpoint and can be resumed."
    )
    with st.container(border=True):
        c1, c2, c3 = st.columns(3)
        model = c1.selectbox("Model", list(MODELS), format_func=lambda name: MODELS[name].title, key="train_model")
        shown = selection.runs[0].info["dataset"] if selection.runs else None  # the sidebar's data set
        dataset = c2.selectbox(
            "Dataset",
            DATASETS,
            index=DATASETS.index(shown) if shown in DATASETS else 0,
            key="train_dataset",
            help="mnist5k is built in and the sprites are drawn by the lab (offline); the others are downloaded once "
            "(needs internet).",
        )
        seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
        recipe = default_recipe(model, checkpoints_dir(), dataset)
        options = dict(recipe["options"]) if recipe else {}
        c4, c5, c6 = st.columns(3)
        budget = c4.radio("Budget in", list(BUDGETS), key="train_budget", horizontal=True)
        low, high, default = BUDGETS[budget]
        if budget == "steps" and recipe and recipe.get("steps"):
            default = int(recipe["steps"])
        recipe_key = f"{model}_{dataset}"  # the defaults follow the recipe of this model on this data set
        amount = c5.number_input(f"Number of {budget}", low, high, default, key=f"train_amount_{budget}_{recipe_key}")
        latent_dim = int(options.get("latent_dim", 8))
        latent_dim = c6.number_input("Latent size", 2, 512, latent_dim, key=f"train_latent_{recipe_key}")
        options["latent_dim"] = int(latent_dim)
        if MODELS[model].has_beta:
            options["beta"] = st.number_input(
                "β (weight of the KL term; 1 = the ELBO)",
                0.0,
                100.0,
                float(options.get("beta", 1.0)),
                0.5,
                key=f"train_beta_{recipe_key}",
            )
        batch_size = int(recipe["batch_size"]) if recipe else 128
        precisions = ("fp32", "auto", "bf16")
        recipe_precision = recipe.get("precision") if recipe else None
        precision = st.selectbox(
            "Precision",
            precisions,
            index=precisions.index(recipe_precision) if recipe_precision in precisions else 0,
            key="train_precision",
            help="auto: bf16 where this machine computes it natively and the model trains faster in it (weights "
            "stay fp32); see BENCHMARKS.md",
        )
        st.caption(
            (
                f"Defaults: the recipe of the committed run `{recipe['run']}`. "
                if recipe
                else "Defaults: the model's textbook settings (there is no committed default run of it). "
            )
            + f"Time: {time_estimate(recipe, budget, amount)}."
        )
        if st.button("Start training", type="primary", key="train_start"):
            run = jobs.unique_run_name(model, dataset)
            jobs.submit(command_args(model, dataset, budget, amount, options, int(seed), batch_size, precision), run)
            st.toast(f"Started {run}")
    jobs.monitor(lambda job: not job.run.startswith(SWEEP_PREFIX), extra=render_finished)
