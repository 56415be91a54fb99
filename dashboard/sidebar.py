"""The sidebar (which runs, seed, sample count, scale) and the first-run page shown when there are no runs."""

from __future__ import annotations

import streamlit as st

from evaluation.bundle import DEFAULT_SAMPLES, DEFAULT_SEED
from generators.default_runs import FIRST_RUN_MODEL, FIRST_RUN_NAME, SELECTED_AT_START
from generators.registry import model_class

from . import jobs
from .state import Run, Selection, checkpoints_dir, scan_runs

SEED_KEY = "seed"
FIRST_RUN_STEPS = 400
SAMPLE_COUNTS = (16, 25, 36, 49, 64)
DEFAULT_SCALE = 2  # the seed and grid size a page opens on are the report's defaults (evaluation.bundle)


def bump_seed() -> None:
    """ "Regenerate" = the next seed, so every tab draws new images and the old ones stay reproducible."""
    st.session_state[SEED_KEY] = int(st.session_state.get(SEED_KEY, 0)) + 1


def render() -> tuple[Selection, list[Run]]:
    """Draw the sidebar; warn (in the page) about run folders that cannot be read."""
    runs, broken = scan_runs()
    for run_dir, reason in broken:
        st.warning(f"Skipped run folder `{run_dir.name}`: {reason}")
    names = [run.name for run in runs]
    with st.sidebar:
        st.header("Runs")
        chosen = st.multiselect(
            "Runs to compare",
            names,
            default=runs_at_start(names),
            key="runs",
            help=f"Run folders in `{checkpoints_dir()}/`. Train more in the Train tab.",
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
    by_name = {run.name: run for run in runs}
    selection = Selection(
        tuple(by_name[name] for name in chosen if name in by_name),
        int(st.session_state[SEED_KEY]),
        int(n_samples),
        int(scale),
    )
    return selection, runs


def runs_at_start(names: list[str]) -> list[str]:
    """The runs a new page compares: the default runs that exist, else the first four."""
    return [name for name in SELECTED_AT_START if name in names] or names[:4]


def selection_at_start() -> Selection:
    """What a new page shows before anyone touches the sidebar (the server warms this up at start)."""
    runs, _broken = scan_runs()
    by_name = {run.name: run for run in runs}
    chosen = tuple(by_name[name] for name in runs_at_start(list(by_name)))
    return Selection(chosen, DEFAULT_SEED, DEFAULT_SAMPLES, DEFAULT_SCALE)


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
