"""python -m benchmarks [--json] — the project's performance figures, each measured in this one run.

- harness_ratio: images/s of the shared harness divided by a bare loop calling the same ``training_step``
  on in-memory batches (same model and batch size), for the recipe of each committed default run. The two
  loops take steps in turn, so both see the same machine load; median of 3 rounds. It prices everything the
  harness adds: DataLoader, history, tqdm, previews and a checkpoint every epoch.
- harness_outside_fraction: the share of the harness's time spent outside ``training_step`` (median of the
  rounds): the same cost read off the harness's own clock.
- train_img_per_s: the harness's images/s per model.
- grid_ms: sample 64 images and lay them out with make_grid, per committed default run (or a fresh model).
- eval_seconds: full evaluation of one run at n = 5 000 (extractor cached), per metric and in total.
- app_first_run_s: first run of the dashboard page in Streamlit's AppTest on the default runs (no warm-up).
- precision_speedup: training images/s of the best of fp32 eager, bf16, fp32 compiled and bf16 compiled over fp32
  eager, per model, with the winning setting (precision_best) and what --precision auto picks (precision_auto);
  paired steps in one run (benchmarks/precision_bench.py).
- sprites_render_s: seconds to render the sprites splits (20 000 + 2 000 images) at 32 px, in colour, at 64 px;
  sprites_eval_seconds: one full evaluation of ``vae-sprites`` at n = 5 000, disentanglement included.
- browser_*: the dashboard in Chromium on the default runs (benchmarks/browser_bench.py): first sample grids,
  all tabs rendered, a seed change, a tab switch.
Ratios, not absolute times, are what to compare across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.ddp_bench import ddp_figures
from benchmarks.precision_bench import precision_figures
from benchmarks.sprites_bench import sprites_figures
from generators.checkpoints import load_run
from generators.data import load_dataset
from generators.default_runs import default_recipe
from generators.default_runs import default_run_dir as committed_run_dir
from generators.errors import OneLineParser, run_command
from generators.registry import MODELS, build_model, load_plugins
from generators.trainer import Trainer
from generators.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3  # steady state only (the one-off first and last waited checkpoints are outside the clock): 3 epochs hold
# two epoch-end checkpoints, previews and DataLoader restarts, like every epoch of a long run
ROUNDS = 3  # the median of 3 paired rounds


def default_run_dir(name: str) -> Path | None:
    return committed_run_dir(name, ROOT / "checkpoints")


def recipe(name: str) -> tuple[dict, int]:
    """Model options and batch size of the committed default run (what ``make checkpoints`` trains), or the
    textbook defaults at batch 128 for a model without one."""
    found = default_recipe(name, ROOT / "checkpoints")
    return (found["options"], found["batch_size"]) if found else ({}, 128)


class BareLoop:
    """The reference loop: the same model, options and batch size stepping on in-memory batches, nothing else."""

    def __init__(self, name: str, options: dict, data, batch_size: int):
        self.model = build_model(name, {**options, "image_shape": data.image_shape}).train()
        self.optimizers = self.model.configure_optimizers(None)
        self.images, self.labels = data.train.images, data.train.labels
        self.order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(0))
        self.batch_size = batch_size
        self.steps, self.seconds = 0, 0.0

    def step(self) -> None:
        start = time.perf_counter()
        first = (self.steps * self.batch_size) % (len(self.images) - self.batch_size)
        idx = self.order[first : first + self.batch_size]
        self.model.training_step((self.images[idx].float() / 255, self.labels[idx]), self.optimizers)
        self.seconds += time.perf_counter() - start
        self.steps += 1


def paired_round(name: str, options: dict, data, batch_size: int, steps: int) -> dict:
    """One harness run with a bare-loop step after each of its steps, timed separately.

    Two loops timed one after the other differ by up to 10 % on a shared machine (load comes and goes); steps
    taken in turn see the same load. A bare step is skipped while a checkpoint is being written in the
    background, so the writer's CPU share is charged to the harness alone. The clock runs from the start of the
    first step to the end of the last one: the steady state of a long run (the one-off step-0 checkpoint and the
    final waited write are outside it). Returns seconds per step of each loop and the share of the harness's
    time spent outside ``training_step``."""
    torch.manual_seed(0)
    bare = BareLoop(name, options, data, batch_size)
    model = build_model(name, {**options, "image_shape": data.image_shape})
    training_step, in_steps, trainer = model.training_step, 0.0, None
    window = [None, None]

    def paired_step(*args):
        nonlocal in_steps
        start = time.perf_counter()
        window[0] = window[0] or start
        logs = training_step(*args)
        in_steps += time.perf_counter() - start
        if not trainer.writer.busy:
            bare.step()
        window[1] = time.perf_counter()
        return logs

    model.training_step = paired_step
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stderr(io.StringIO()):
        trainer = Trainer(
            model,
            data,
            TrainConfig(steps=steps, batch_size=batch_size),
            Path(run_dir),
            {"model": name, "model_config": model.config.to_dict()},
            show_progress=True,
        )
        trainer.fit()
        harness = window[1] - window[0] - bare.seconds
    return {
        "bare_s_per_step": bare.seconds / bare.steps,
        "harness_s_per_step": harness / steps,
        "outside_fraction": 1 - in_steps / harness,
    }


def harness_figures() -> dict:
    """Bare and harness steps alternate within each round (see ``paired_round``); the figures are medians of
    the rounds. The outside fraction is the harness's cost read off its own clock alone."""
    data = load_dataset("mnist5k")
    ratios, outside, throughput, setup = {}, {}, {}, {}
    for name in MODELS:
        options, batch_size = recipe(name)
        steps = EPOCHS * (len(data.train) // batch_size)
        paired_round(name, options, data, batch_size, 5)  # warm-up: allocator and kernels
        rounds = [paired_round(name, options, data, batch_size, steps) for _ in range(ROUNDS)]
        round_ratios = [r["bare_s_per_step"] / r["harness_s_per_step"] for r in rounds]
        ratios[name] = round(statistics.median(round_ratios), 3)
        outside[name] = round(statistics.median(r["outside_fraction"] for r in rounds), 4)
        throughput[name] = round(batch_size / statistics.median(r["harness_s_per_step"] for r in rounds), 1)
        setup[name] = {
            "batch_size": batch_size,
            "steps": steps,
            "options": options,
            "round_ratios": [round(r, 3) for r in round_ratios],
            "outside_fractions": [round(r["outside_fraction"], 4) for r in rounds],
        }
    return {
        "harness_ratio": ratios,
        "harness_outside_fraction": outside,
        "train_img_per_s": throughput,
        "harness_setup": {"epochs": EPOCHS, "rounds": ROUNDS, **setup},
    }


def grid_figures() -> dict:
    from torchvision.utils import make_grid

    timings = {}
    for name in MODELS:
        run = default_run_dir(name)
        model = load_run(run)[0] if run else build_model(name, {"image_shape": (1, 28, 28)}).eval()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            with torch.inference_mode():
                make_grid(model.sample(64, generator=torch.Generator().manual_seed(0)), nrow=8)
            best = min(best, time.perf_counter() - start)
        timings[name] = round(best * 1000, 2)
    return {"grid_ms": timings}


def evaluation_figures() -> dict:
    try:
        from benchmarks.evaluation_bench import evaluation_timings
    except ImportError:
        return {"eval_seconds": None}
    figures = {}
    for name in MODELS:
        run = default_run_dir(name)
        if run is not None:
            figures[name] = evaluation_timings(run, n=5000)
    return {"eval_seconds": figures or None}


def app_figures() -> dict:
    from streamlit.testing.v1 import AppTest

    from dashboard import PAGE

    start = time.perf_counter()
    app = AppTest.from_file(str(PAGE), default_timeout=600).run()
    seconds = time.perf_counter() - start
    return {"app_first_run_s": round(seconds, 2), "app_exceptions": len(app.exception)}


def machine() -> dict:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }


def browser_figures() -> dict:
    from benchmarks.browser_bench import browser_figures as measure

    return measure()


GROUPS = {
    "harness": harness_figures,
    "grid": grid_figures,
    "eval": evaluation_figures,
    "app": app_figures,
    "browser": browser_figures,
    "ddp": ddp_figures,
    "precision": precision_figures,
    "sprites": lambda: sprites_figures(ROOT / "checkpoints" / "vae-sprites"),
}


def main(argv=None) -> int:
    return run_command(lambda: measure(argv))


def measure(argv) -> int:
    parser = OneLineParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--only", choices=tuple(GROUPS), nargs="+", help="measure only these groups")
    args = parser.parse_args(argv)
    load_plugins()
    results = {"machine": machine()}
    for name, measure in GROUPS.items():
        if not args.only or name in args.only:
            print(f"measuring {name} …", file=sys.stderr)
            results.update(measure())
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
