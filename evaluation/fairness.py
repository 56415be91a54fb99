"""The fairness table: what each run was given — parameters (per network), latent size, steps, epochs, training
seconds, batch size, training images — and which samplers it has metrics for. Differences in results are only read
against it."""

from __future__ import annotations

import pandas as pd

from .rows import stored_rows


def fairness_frame(runs) -> pd.DataFrame:
    """One row per run (``evaluation.runs.Run`` records, or anything with the same attributes)."""
    rows = []
    for run in runs:
        counts = run.model().parameter_counts()
        tc = run.info.get("train_config") or {}
        rows.append(
            {
                "run": run.name,
                "model": run.capabilities.title,
                "parameters": " + ".join(f"{name} {count / 1e6:.2f} M" for name, count in counts.items()),
                "latent size": run.info["model_config"].get("latent_dim"),
                "steps": run.info.get("step"),
                "epochs": run.info.get("epoch"),
                "training seconds": run.info.get("seconds"),
                "batch size": tc.get("batch_size"),
                "training images": training_images(tc),
                "samplers with metrics": ", ".join(sorted({row.get("sampler", "prior") for row in stored_rows(run)}))
                or "—",
            }
        )
    return pd.DataFrame(rows)


def training_images(train_config: dict) -> str:
    """What a run trained on: the whole train split, or ``--train-size`` of it, without ``--exclude-classes``."""
    size, excluded = train_config.get("train_size"), train_config.get("exclude_classes")
    text = f"{size}" if size else "the whole train split"
    return text + (f", without class{'es' * (len(excluded) > 1)} {', '.join(map(str, excluded))}" if excluded else "")
