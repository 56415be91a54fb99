"""The sidebar (which runs, seed, sample count, scale) and the first-run page shown when there are no runs."""

from __future__ import annotations

import streamlit as st

from evaluation.bundle import DEFAULT_SAMPLES, DEFAULT_SEED
from evaluation.runs import by_dataset
from generators.default_runs import DEFAULT_DATASET, FIRST_RUN_MODEL, FIRST_RUN_NAME, SELECTED_AT_START, SPRITES_RUNS
from generators.registry import model_class

from . import jobs
from .state import Run, Selection, checkpoints_dir, scan_runs

SEED_KEY = "seed"
DATASET_KEY = "dataset"
RUNS_KEY = "runs"
FIRST_RUN_STEPS = 400
SAMPLE_COUNTS = (16, 25, 36, 49, 64)
DEFAULT_SCALE = 2  # the seed and grid size a page opens on are the report's defaults (evaluation.bundle)


def bump_seed() -> None:
    """ "Regenerate" = the next seed, so every tab draws new images and the old ones stay reproducible."""
    st.session_state[SEED_KEY] = int(st.session_state.get(SEED_KEY, 0)) + 1


def render() -> tuple[Selection, list[Run]]:
    """Draw the sidebar; warn (in the page) about run folders that cannot be read. It picks one data set first and
    the runs of that data set, so no tab ever compares runs of different data sets."""
    runs, broken = scan_runs()
    for run_dir, reason in broken:
        st.warning(f"Skipped run folder `{run_dir.name}`: {reason}")
    groups = by_dataset(runs)
    with st.sidebar:
        st.header("Runs")
        st.session_state.setdefault(DATASET_KEY, dataset_at_start(groups))
        if st.session_state[DATASET_KEY] not in groups:  # its last run was deleted
            st.session_state[DATASET_KEY] = dataset_at_start(groups)
        dataset = st.selectbox(
            "Data set",
            list(groups),
            key=DATASET_KEY,
            help="Runs are compared within one data set: their scores are measured on different images otherwise.",
        )  # no run count in its labels: Streamlit keeps a choice by its label, and a new run would change it
        names = [run.name for run in groups.get(dataset, [])]
        chosen = [name for name in st.session_state.get(RUNS_KEY, []) if name in names]
        if RUNS_KEY not in st.session_state or not chosen and st.session_state[RUNS_KEY]:
            chosen = runs_at_start(names)  # a new page, or the data set changed: its default runs
        st.session_state[RUNS_KEY] = chosen
        chosen = st.multiselect(
            "Runs to compare",
            names,
            key=RUNS_KEY,
            help=f"Run folders in `{checkpoints_dir()}/` trained on {dataset}. Train more in the Train tab.",
        )
        st.header("Drawing")
        st.session_state.setdefault(SEED_KEY, DEFAULT_SEED)  # its value lives in the state: Regenerate sets it
        st.number_input(
            "Seed",
            min_value=0,
            max_value=2**31 - 1,
            step=1,
            key=SEED_KEY,
            help="The same seed draws the same latents for every run with the same latent size.",
        )
        n_samples = st.select_slider("Samples per grid", options=SAMPLE_COUNTS, value=DEFAULT_SAMPLES, key="n_samples")
        scale = st.slider(
            "Image scale", 1, 4, DEFAULT_SCALE, key="scale", help="Enlarge the small images (nearest neighbour)."
        )
        training = [run.name for run in runs if run.training]
        if training:
            st.caption("Still training: " + ", ".join(training))
    by_name = {run.name: run for run in groups.get(dataset, [])}
    selection = Selection(
        tuple(by_name[name] for name in chosen if name in by_name),
        int(st.session_state[SEED_KEY]),
        int(n_samples),
        int(scale),
    )
    return selection, runs


def runs_at_start(names: list[str]) -> list[str]:
    """The runs a page opens on for a data set: its default runs that exist (the classic four on digits; all six on
    sprites, whose β sweep and findings need its four VAEs), else its first four."""
    return [name for name in (*SELECTED_AT_START, *SPRITES_RUNS) if name in names] or names[:4]


def dataset_at_start(groups: dict[str, list[Run]]) -> str | None:
    """The data set a new page shows: the default runs' (mnist5k) when it has runs, else the first one's."""
    return DEFAULT_DATASET if DEFAULT_DATASET in groups else next(iter(groups), None)


def selection_at_start() -> Selection:
    """What a new page shows before anyone touches the sidebar (the server warms this up at start)."""
    runs, _broken = scan_runs()
    groups = by_dataset(runs)
    dataset = dataset_at_start(groups)
    by_name = {run.name: run for run in groups.get(dataset, [])}
    chosen = tuple(by_name[name] for name in runs_at_start(list(by_name)))
    return Selection(chosen, DEFAULT_SEED, DEFAULT_SAMPLES, DEFAULT_SCALE)


def compare(run: str, dataset: str) -> None:
    """Show the finished run ``run`` (trained on ``dataset``) in the sidebar: its data set, and it among the runs
    compared (a callback: widget state may only change before the widget runs)."""
    chosen = list(st.session_state.get(RUNS_KEY, [])) if st.session_state.get(DATASET_KEY) == dataset else []
    st.session_state[DATASET_KEY] = dataset
    st.session_state[RUNS_KEY] = [*chosen, run] if run not in chosen else chosen


def render_first_run() -> None:
    """No runs yet: say how to train one, and offer to do it from here."""
    title = model_class(FIRST_RUN_MODEL).title
    st.info(
        f"There are no trained runs in `{checkpoints_dir()}/` yet. Train a first one from a terminal:\n\n"
        f"```\npython -m generators train {FIRST_RUN_MODEL} --steps {FIRST_RUN_STEPS} "
        f"--out-dir {checkpoints_dir()}\n```"
        "\n\nor with the button below (about a minute on a laptop CPU). The Train tab offers every model and option."
    )
    first = lambda job: job.run == FIRST_RUN_NAME  # noqa: E731
    if not any(first(job) for job in jobs.session_jobs()):
        if st.button(f"Train a first {title} on MNIST-5k", type="primary"):
            jobs.submit([FIRST_RUN_MODEL, "--dataset", "mnist5k", "--steps", str(FIRST_RUN_STEPS)], FIRST_RUN_NAME)
            st.rerun()
    jobs.monitor(first)
