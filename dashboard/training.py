"""Tab 6 — Train: start a run in a separate process, watch its progress, cancel it (the checkpoint is kept)."""

from __future__ import annotations

import streamlit as st

from . import jobs
from .state import MODEL_TITLES, Selection

DATASETS = ("mnist5k", "mnist", "fashion-mnist", "cifar10")
BUDGETS = {"steps": (10, 100_000, 600), "epochs": (1, 500, 5), "minutes": (1, 600, 2)}
SWEEP_PREFIX = "sweep-"


def command_args(
    model: str, dataset: str, budget: str, amount: float, latent_dim: int, seed: int, beta: float | None
) -> list[str]:
    """The ``python -m generators train`` arguments for the form's choices."""
    args = [
        model,
        "--dataset",
        dataset,
        f"--{budget}",
        f"{amount:g}",
        "--latent-dim",
        str(latent_dim),
        "--seed",
        str(seed),
    ]
    if beta is not None:
        args += ["--beta", f"{beta:g}"]
    return args


def render(selection: Selection) -> None:
    st.markdown(
        "Training runs in its own process: keep using the other tabs meanwhile. A cancelled run keeps "
        "its last checkpoint and can be continued from a terminal with `--resume`."
    )
    with st.container(border=True):
        c1, c2, c3 = st.columns(3)
        model = c1.selectbox("Model", list(MODEL_TITLES), format_func=MODEL_TITLES.get, key="train_model")
        dataset = c2.selectbox(
            "Dataset",
            DATASETS,
            key="train_dataset",
            help="mnist5k is built in; the others are downloaded once (needs internet).",
        )
        seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
        c4, c5, c6 = st.columns(3)
        budget = c4.radio("Budget in", list(BUDGETS), key="train_budget", horizontal=True)
        low, high, default = BUDGETS[budget]
        amount = c5.number_input(f"Number of {budget}", low, high, default, key=f"train_amount_{budget}")
        latent_dim = c6.number_input("Latent size", 2, 512, 16, key="train_latent")
        beta = None
        if model == "vae":
            beta = st.number_input("β (weight of the KL term; 1 = the ELBO)", 0.0, 100.0, 1.0, 0.5, key="train_beta")
        if st.button("Start training", type="primary", key="train_start"):
            run = jobs.unique_run_name(model, dataset)
            jobs.submit(command_args(model, dataset, budget, amount, int(latent_dim), int(seed), beta), run)
            st.toast(f"Started {run}")
    jobs.monitor(lambda job: not job.run.startswith(SWEEP_PREFIX))
