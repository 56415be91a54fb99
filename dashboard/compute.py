"""Computing the metrics of runs from the page, for every tab that offers it (Metrics, Train, Sweeps): one progress
bar for all the runs, each evaluated in a child process. Not a tab, so tabs share it without importing each other."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from .state import checkpoints_dir


def extractor_cache() -> Path:
    """The evaluation's feature extractors live beside the runs (``_`` folders are not runs)."""
    return checkpoints_dir() / "_extractors"


def compute_metrics(runs, n: int, recompute: bool) -> None:
    """Evaluate each run (stored in its metrics.json), with one progress bar for all of them.

    Each run is evaluated in a child process (``evaluation.isolated``), so a crash in native code ends that
    evaluation, not the server; the runs that failed are reported together after the others are done.
    """
    from evaluation.isolated import evaluate_isolated
    from generators.errors import UserError

    bar = st.progress(0.0, text="Starting the evaluation…")
    failures = []
    for i, run in enumerate(runs):

        def report(fraction: float, message: str, i=i, run=run) -> None:
            overall = (i + min(max(fraction, 0.0), 1.0)) / len(runs)
            bar.progress(overall, text=f"{run.name}: {message}")

        try:
            evaluate_isolated(
                run.run_dir, n=n, progress=report, use_cache=not recompute, cache_dir=str(extractor_cache())
            )
        except UserError as exc:
            failures.append(str(exc))
    bar.progress(1.0, text="Done: the metrics are stored in each run's metrics.json.")
    if failures:
        raise UserError(" | ".join(failures))
