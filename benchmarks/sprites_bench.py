"""The sprites data sets (``python -m benchmarks --only sprites``): seconds to render the train and test splits
(20 000 + 2 000 images, drawn by ``generators.sprites``, no cache) per variant, median of 3, and one full
evaluation of the committed ``vae-sprites`` run at n = 5 000 with its disentanglement stage (extractor cached)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from generators import sprites
from generators.checkpoints import WEIGHTS

VARIANTS = {"sprites-32": (False, 32), "sprites-color-32": (True, 32), "sprites-64": (False, 64)}
ROUNDS = 3


def render_seconds() -> dict[str, float]:
    figures = {}
    for name, (color, size) in VARIANTS.items():
        rounds = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            sprites.sprites_splits(color, size)
            rounds.append(time.perf_counter() - start)
        figures[name] = round(statistics.median(rounds), 2)
    return figures


def sprites_figures(run_dir: Path) -> dict:
    from benchmarks.evaluation_bench import evaluation_timings

    figures = {"sprites_render_s": render_seconds()}
    if (run_dir / WEIGHTS).is_file():
        figures["sprites_eval_seconds"] = evaluation_timings(run_dir, n=5000)
    return figures
