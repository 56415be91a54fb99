"""A held-out class (``python -m generators train … --exclude-classes 9``): does a model trained without the 9s
draw any? The share of its samples that the evaluation's classifier puts in the held-out classes, with a 95 %
Wilson interval over the samples (a share near 0 is where the normal interval would leave [0, 1])."""

from __future__ import annotations

import math

from .comparison import Z95


def wilson_interval(share: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a share seen in ``n`` independent draws."""
    centre = (share + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    spread = Z95 / (1 + Z95**2 / n) * math.sqrt(share * (1 - share) / n + Z95**2 / (4 * n * n))
    return max(0.0, centre - spread), min(1.0, centre + spread)


def held_out_share(row: dict, info: dict) -> dict:
    """``held_out_share`` and its interval for a run trained without some classes (its stored ``info``); None
    for other runs and for rows without a class histogram (an extractor that knows no classes). The histogram of
    several sampling seeds is their mean, so the share counts every sample of every seed."""
    excluded = (info.get("train_config") or {}).get("exclude_classes")
    histogram, n = row.get("class_histogram"), row.get("n_fake")
    if not excluded or not histogram or not n:
        return dict.fromkeys(("held_out_share", "held_out_share_ci_low", "held_out_share_ci_high"))
    draws = n * len(row.get("seeds") or [0])
    share = min(1.0, sum(histogram[c] for c in excluded if c < len(histogram)))
    low, high = wilson_interval(share, draws)
    return {
        "held_out_classes": list(excluded),
        "held_out_share": share,
        "held_out_share_ci_low": low,
        "held_out_share_ci_high": high,
    }
