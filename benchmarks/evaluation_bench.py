"""Seconds per metric of one full evaluation (``evaluation_timings``), for ``python -m benchmarks``.

The run folder is copied to a temp folder first, so timing never rewrites a committed ``metrics.json``. The
extractor is trained or loaded before the clock starts (the figure is "with a cached extractor"); the
dataset is loaded inside the timed call, as a fresh ``python -m evaluation`` would.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRACTOR_DIR = ROOT / "checkpoints" / "_extractors"


def evaluation_timings(run_dir, n: int = 5000) -> dict[str, float]:
    """{stage: seconds, ..., "total": seconds, and ``evaluation_overhead``'s figures} for
    ``evaluate_run(run_dir, n=n)`` without its result cache."""
    from evaluation import runner
    from evaluation.features import get_extractor
    from generators.checkpoints import LOCK, RESUME, read_run_info
    from generators.data import clear_dataset_cache, load_run_dataset

    info = read_run_info(Path(run_dir))
    get_extractor(info["dataset"], info["image_shape"], cache_dir=EXTRACTOR_DIR, data=load_run_dataset(info))
    clear_dataset_cache()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / Path(run_dir).name
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(runner.METRICS_FILE, RESUME, LOCK))
        start = time.perf_counter()
        runner.evaluate_run(copy, n=n, use_cache=False, cache_dir=EXTRACTOR_DIR, timings=timings)
        total = time.perf_counter() - start
    figures = {name: round(seconds, 2) for name, seconds in timings.items()}
    figures["total"] = round(total, 2)
    return {**figures, **evaluation_overhead({**timings, "total": total})}


def evaluation_overhead(timings: dict[str, float]) -> dict[str, float]:
    """What the bootstrap intervals, the held-out reference and the copy rate add to one evaluation (the goal,
    BENCHMARKS.md: at most 30 % at n = 5 000), from the parts timed inside it (so both sides see the same machine
    load): their seconds, and ``overhead_fraction`` = their seconds / the seconds of everything else."""
    from evaluation.scoring import BOOTSTRAP_PART, COPY_PART, HELD_OUT_PART

    added = sum(timings.get(part, 0.0) for part in (BOOTSTRAP_PART, HELD_OUT_PART, COPY_PART))
    return {
        "added_by_intervals_heldout_copy": round(added, 2),
        "overhead_fraction": round(added / (timings["total"] - added), 3),
    }
