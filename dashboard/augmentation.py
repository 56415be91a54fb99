"""The Metrics tab's last part — Augmentation: do a conditional run's generated images help a classifier trained on
few real ones? It shows the results stored in each run's augmentation.json (``evaluation.augmentation``) and offers
to compute the missing ones with a small default, with a progress bar."""

from __future__ import annotations

import streamlit as st

from evaluation.augmentation import (
    DEFAULT_SEEDS,
    TABLE_NOTE,
    augment_run,
    augmentation_figure,
    generator_note,
    stored_by_run,
    table,
)

from . import export
from .state import Selection

QUICK_REAL_PER_CLASS = (10, 100)  # the button's small default: about a minute per run on a laptop CPU

EXPLANATION = """
Each point is the test accuracy of the project's small classifier trained on **k real images per class** alone
(dashed) or with the run's **generated images** added under the labels they were drawn for, with 95 % intervals over
classifier seeds. A coloured line clearly above the dashed one at small k means the generator adds what a few real
images lack; where the lines meet at large k, the real images already say it.
"""


def compute(runs) -> None:
    """Measure the missing (k, seed) pairs of the quick default for each run, with one progress bar."""
    bar = st.progress(0.0, text="Training the classifiers…")
    baseline: dict = {}
    for i, run in enumerate(runs):

        def report(fraction: float, message: str, i=i, run=run) -> None:
            bar.progress(min((i + fraction) / len(runs), 1.0), text=f"{run.name}: {message}")

        augment_run(run, real_per_class=QUICK_REAL_PER_CLASS, seeds=DEFAULT_SEEDS, baseline=baseline, progress=report)
    bar.progress(1.0, text="Done: the results are stored in each run's augmentation.json.")


def render(selection: Selection) -> None:
    conditional = [run for run in selection.runs if run.capabilities.conditional]
    others = [run.name for run in selection.runs if not run.capabilities.conditional]
    if others:
        st.caption(
            "Not measured (unconditional: their samples have no labels, and labelling them with the evaluation's "
            "classifier would leak the whole labelled train split): " + ", ".join(others)
        )
    if not conditional:
        st.info("Select a class-conditional run (e.g. cvae-mnist5k) to see whether its images help a classifier.")
        return
    results = stored_by_run(conditional)
    missing = [run for run in conditional if run.name not in results]
    if missing and st.button(
        "Compute for " + ", ".join(run.name for run in missing) + f" (k = {', '.join(map(str, QUICK_REAL_PER_CLASS))}"
        f", seeds {', '.join(map(str, DEFAULT_SEEDS))})",
        key="augmentation_compute",
        help="Trains 2 small classifiers per k and seed: about a minute per run. The command line does more: "
        "python -m evaluation augment RUN… --real-per-class 10 50 100",
    ):
        compute(missing)
        results = stored_by_run(conditional)
    if not results:
        st.info("No stored augmentation results for the selected runs yet: compute them above.")
        return
    export.chart(augmentation_figure(results), "augmentation", "metrics-augmentation")
    st.dataframe(table(results), hide_index=True)
    st.caption(TABLE_NOTE)
    st.caption(generator_note([run for run in conditional if run.name in results]) + ".")
    st.markdown(EXPLANATION)
