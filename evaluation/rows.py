"""Which stored metric rows are compared: those computed from a run's current weights, one per run, all at one n
with the prior sampler (FID depends on n, so rows at different n are never mixed)."""

from __future__ import annotations

from .store import load_metrics


def stored_rows(run, stale: bool = False) -> list[dict]:
    """The stored rows of a run (one per n, sampler and settings) computed from its current weights, labelled
    with the run's name; ``stale=True``: the rows computed from older weights instead (e.g. before a resume)."""
    rows = [{**row, "run": run.name} for row in load_metrics(run.run_dir).values()]
    current = run.weights_hash()
    return [row for row in rows if (row.get("weights_sha256") == current) != stale]


def available_ns(runs) -> list[int]:
    return sorted({row.get("n_fake") for run in runs for row in stored_rows(run) if row.get("n_fake")})


def rows_at(runs, n: int) -> list[dict]:
    """Every stored row at exactly ``n`` samples (all samplers), in the order of the runs."""
    return [row for run in runs for row in stored_rows(run) if row.get("n_fake") == n]


def comparison_n(runs) -> int | None:
    """The largest n at which every run has a prior-sampler row: rows at one n are comparable, mixed n are not."""
    shared = None
    for run in runs:
        ns = {row.get("n_fake") for row in stored_rows(run) if row.get("sampler", "prior") == "prior"}
        shared = ns if shared is None else shared & ns
    return max(shared) if shared else None


def comparison_rows(runs) -> list[dict]:
    """One prior-sampler row per run, all at one n (``comparison_n``); [] when no such n exists. These are the
    rows the findings and the report compare."""
    n = comparison_n(runs)
    if n is None:
        return []
    return [row for row in rows_at(runs, n) if row.get("sampler", "prior") == "prior"]


def stored_row(run) -> dict | None:
    """The run's prior-sampler row with the most samples, or None."""
    rows = [row for row in stored_rows(run) if row.get("sampler", "prior") == "prior"]
    return max(rows, key=lambda row: row.get("n_fake") or 0) if rows else None


def row_at(run, n: int) -> dict | None:
    """The run's stored prior-sampler row at exactly ``n`` samples (whatever weights it was computed from; the
    β sweep's points), or None."""
    rows = [
        row for row in load_metrics(run.run_dir).values() if row.get("n_fake") == n and row.get("sampler") == "prior"
    ]
    return rows[0] if rows else None
