"""Training-seed groups: runs of one recipe that differ only in their training seed (``python -m generators
train vae --seeds 0 1 2`` makes one). A group's row holds, per metric, the mean over its runs, the standard
deviation (``<metric>_std``) and the per-run values (``<metric>_replicates``), which the findings test with
Welch's interval — uncertainty over training runs, not only over samples.

Rows passed in must share one n and extractor (the caller picks them); rows of different samplers form separate
groups, so one run's prior / GMM / two-stage rows are never taken for training seeds.
"""

from __future__ import annotations

import json
import re
import statistics

from .metric_specs import METRICS

SEED_INDEPENDENT = ("seed", "device", "data_dir")  # train-config fields that may differ inside a group


def recipe_key(info: dict) -> str:
    """Everything that defines a run's recipe except its seed: model, its config, data, budget, batch size."""
    train = {k: v for k, v in (info.get("train_config") or {}).items() if k not in SEED_INDEPENDENT}
    return json.dumps(
        {
            "model": info.get("model"),
            "model_config": info.get("model_config"),
            "dataset": info.get("dataset"),
            "train": train,
            "step": info.get("step"),
        },
        sort_keys=True,
        default=str,
    )


def group_name(names: list[str]) -> str:
    """``vae-s0, vae-s1, vae-s2`` -> ``vae (3 seeds)``; other names -> their common prefix."""
    stems = {re.sub(r"-s\d+$", "", name) for name in names}
    stem = stems.pop() if len(stems) == 1 else (_common_prefix(names).rstrip("-_") or "group")
    return f"{stem} ({len(names)} seeds)"


def _common_prefix(names: list[str]) -> str:
    first, last = min(names), max(names)
    size = next((i for i, (a, b) in enumerate(zip(first, last)) if a != b), min(len(first), len(last)))
    return first[:size]


def group_rows(rows: list[dict], infos: dict[str, dict]) -> list[dict]:
    """One row per group of at least two runs with the same recipe, per sampler (``infos``: run name -> stored run
    info)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        info = infos.get(row["run"])
        if info is not None:
            groups.setdefault((recipe_key(info), row.get("sampler", "prior")), []).append(row)
    return [_group_row(members) for members in groups.values() if len({row["run"] for row in members}) > 1]


def _group_row(members: list[dict]) -> dict:
    names = [row["run"] for row in members]
    row = {
        "run": group_name(names),
        "group_runs": names,
        "group_n": len(members),
        **{k: members[0].get(k) for k in ("model", "dataset", "sampler", "n_fake", "n_real", "extractor_id")},
    }
    for key in METRICS:
        values = [m[key] for m in members if isinstance(m.get(key), (int, float)) and not isinstance(m.get(key), bool)]
        if len(values) == len(members):
            row[key] = statistics.fmean(values)
            row[f"{key}_std"] = statistics.stdev(values)
            row[f"{key}_replicates"] = values
            row[f"{key}_replicates_of"] = "training seeds"
    return row
