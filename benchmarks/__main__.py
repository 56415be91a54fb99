"""python -m benchmarks [--json] — the project's performance figures, each measured in this one run.

- harness_ratio: images/s of the shared harness divided by a bare loop calling the same ``training_step``
  on in-memory batches (same model, batch size and number of steps, best of several alternating rounds),
  for the recipe of each committed default run. It prices everything the harness adds: DataLoader,
  history, tqdm, previews and a checkpoint every epoch.
- harness_outside_fraction: the share of the harness's wall time spent outside ``training_step`` (median
  of the rounds), the steady part of that cost (the ratio of two timed loops swings by several percent on
  a shared machine).
- train_img_per_s: the harness's images/s per model.
- grid_ms: sample 64 images and lay them out with make_grid, per committed default run (or a fresh model).
- eval_seconds: full evaluation of one run at n = 5 000 (extractor cached), per metric and in total.
- app_first_run_s: first run of app.py in Streamlit's AppTest on the default runs.
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

from generators.checkpoints import load_run, read_run_info
from generators.data import load_dataset
from generators.registry import MODELS, build_model
from generators.training import Trainer, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = {"vae": "vae-mnist5k", "ae": "ae-mnist5k", "dcgan": "dcgan-mnist5k"}
EPOCHS = 10  # the default runs train 44-71 epochs: the waited first and last checkpoints must not weigh 2x more
ROUNDS = 3  # best of 3: single rounds of the same loop vary by up to 10 % on this shared machine


def default_run_dir(name: str) -> Path | None:
    run = ROOT / "checkpoints" / DEFAULT_RUNS[name]
    return run if (run / "model.safetensors").is_file() else None


def recipe(name: str) -> tuple[dict, int]:
    """Model options and batch size of the committed default run (what ``make checkpoints`` trains), or the
    textbook defaults at batch 128 when there is no such run."""
    run = default_run_dir(name)
    if run is None:
        return {}, 128
    info = read_run_info(run)
    options = {k: v for k, v in info["model_config"].items() if k != "image_shape"}
    return options, info["train_config"]["batch_size"]


def bare_loop_seconds(name: str, options: dict, data, batch_size: int, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model(name, {**options, "image_shape": data.image_shape}).train()
    optimizers = model.configure_optimizers(None)
    images, labels = data.train.images, data.train.labels
    order = torch.randperm(len(images))
    start = time.perf_counter()
    for step in range(steps):
        idx = order[(step * batch_size) % (len(images) - batch_size):][:batch_size]
        model.training_step((images[idx].float() / 255, labels[idx]), optimizers)
    return time.perf_counter() - start


def harness_seconds(name: str, options: dict, data, batch_size: int, steps: int) -> tuple[float, float]:
    """Wall time of ``Trainer.fit`` and the part of it spent inside the model's ``training_step``."""
    torch.manual_seed(0)
    model = build_model(name, {**options, "image_shape": data.image_shape})
    in_steps = 0.0
    training_step = model.training_step

    def timed_step(*args):
        nonlocal in_steps
        start = time.perf_counter()
        logs = training_step(*args)
        in_steps += time.perf_counter() - start
        return logs

    model.training_step = timed_step
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stderr(io.StringIO()):
        trainer = Trainer(model, data, TrainConfig(steps=steps, batch_size=batch_size), Path(run_dir),
                          {"model": name, "model_config": model.config.to_dict()}, show_progress=True)
        start = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - start, in_steps


def harness_figures() -> dict:
    """Wall-clock ratios swing by several percent between rounds on a shared machine, so the time the harness
    spends outside ``training_step`` (previews, checkpoints, data, logging) is reported as well: it is the
    part of its cost that load does not blur (only the background writer's share of the CPU is not in it)."""
    data = load_dataset("mnist5k")
    ratios, outside, throughput, setup = {}, {}, {}, {}
    for name in MODELS:
        options, batch_size = recipe(name)
        steps = EPOCHS * (len(data.train) // batch_size)
        bare_loop_seconds(name, options, data, batch_size, 5)  # warm-up: allocator and kernels
        bare, harness = [], []
        for _ in range(ROUNDS):  # alternate so that load on this shared machine hits both alike
            bare.append(bare_loop_seconds(name, options, data, batch_size, steps))
            harness.append(harness_seconds(name, options, data, batch_size, steps))
        fastest = min(total for total, _ in harness)
        fractions = [1 - in_steps / total for total, in_steps in harness]
        ratios[name] = round(min(bare) / fastest, 3)
        outside[name] = round(statistics.median(fractions), 4)
        throughput[name] = round(steps * batch_size / fastest, 1)
        setup[name] = {"batch_size": batch_size, "steps": steps, "options": options,
                       "rounds_s": {"bare": [round(t, 2) for t in bare], "harness": [round(t, 2) for t, _ in harness]},
                       "outside_fractions": [round(f, 4) for f in fractions]}
    return {"harness_ratio": ratios, "harness_outside_fraction": outside, "train_img_per_s": throughput,
            "harness_setup": {"epochs": EPOCHS, "rounds": ROUNDS, **setup}}


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
    if not (ROOT / "app.py").is_file():
        return {"app_first_run_s": None}
    from streamlit.testing.v1 import AppTest

    start = time.perf_counter()
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
    seconds = time.perf_counter() - start
    return {"app_first_run_s": round(seconds, 2), "app_exceptions": len(app.exception)}


def machine() -> dict:
    return {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--only", choices=("harness", "grid", "eval", "app"), nargs="*",
                        help="measure only these groups")
    args = parser.parse_args(argv)
    groups = {"harness": harness_figures, "grid": grid_figures, "eval": evaluation_figures, "app": app_figures}
    results = {"machine": machine()}
    for name, measure in groups.items():
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
