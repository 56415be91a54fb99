"""precision_speedup: training images/s per model in fp32 eager, bf16 (autocast), fp32 compiled and bf16 compiled.

Per registered model, at the recipe of its committed default run (``benchmarks/__main__.py::recipe``), four copies
of the model from the same seed step on the same in-memory batches through ``generators.precision.StepRunner``,
the way the harness runs a step. Each copy first takes ``WARMUP`` untimed steps (allocator, oneDNN kernels, and
``torch.compile``'s compilation, reported as ``compile_s``); then the copies take steps in turn — one step each,
in a rotating order — for ``ROUNDS`` rounds of ``STEPS`` steps, so every setting sees the same machine load. A
setting's images/s is the batch size over the median of its rounds' mean step times. ``precision_speedup`` is the
best setting's images/s over fp32 eager's, ``precision_best`` names it, and ``precision_auto`` says what
``--precision auto`` trains the model with on this machine.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

from generators.data import load_dataset
from generators.precision import StepRunner, auto_precision
from generators.registry import MODELS, build_model

ALL_SETTINGS = {
    "fp32": ("fp32", False),
    "bf16": ("bf16", False),
    "fp32_compiled": ("fp32", True),
    "bf16_compiled": ("bf16", True),
}
# PRECISION_BENCH_SETTINGS="bf16": a quick run without the compiled settings (minutes of compiling each); fp32
# eager, the baseline of every ratio, is always measured
SETTINGS = {
    "fp32": ALL_SETTINGS["fp32"],
    **{
        name: ALL_SETTINGS[name]
        for name in os.environ.get("PRECISION_BENCH_SETTINGS", " ".join(ALL_SETTINGS)).split()
        if name in ALL_SETTINGS
    },
}
WARMUP = 4  # steps: the first compiles (two or three graphs per network: D sees real and fake images)
STEPS = int(os.environ.get("PRECISION_BENCH_STEPS", 15))  # per round and setting
ROUNDS = 3


class Loop:
    """One model copy stepping on in-memory batches in one precision / compilation setting."""

    def __init__(self, name: str, options: dict, data, batch_size: int, precision: str, compile: bool):
        torch.manual_seed(0)
        self.model = build_model(name, {**options, "image_shape": data.image_shape}).train()
        self.optimizers = self.model.configure_optimizers(None)
        self.runner = StepRunner(self.model, torch.device("cpu"), precision, compile, say=lambda text: None)
        self.images, self.labels, self.batch_size = data.train.images, data.train.labels, batch_size
        self.order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(0))
        self.steps = 0

    def step(self) -> float:
        """One training step; its seconds."""
        first = (self.steps * self.batch_size) % (len(self.images) - self.batch_size)
        idx = self.order[first : first + self.batch_size]
        batch = (self.images[idx].float() / 255, self.labels[idx])
        start = time.perf_counter()
        with self.runner.step(self.optimizers) as optimizers:
            self.model.training_step(batch, optimizers)
        self.steps += 1
        return time.perf_counter() - start


def measure_model(name: str, options: dict, data, batch_size: int) -> dict:
    loops = {setting: Loop(name, options, data, batch_size, *how) for setting, how in SETTINGS.items()}
    compile_s = {}
    for setting, loop in loops.items():
        compile_s[setting] = round(sum(loop.step() for _ in range(WARMUP)), 2)
    rounds = {setting: [] for setting in loops}
    order = list(loops)
    for _ in range(ROUNDS):
        seconds = dict.fromkeys(loops, 0.0)
        for step in range(STEPS):
            for setting in order[step % len(order) :] + order[: step % len(order)]:
                seconds[setting] += loops[setting].step()
        for setting, total in seconds.items():
            rounds[setting].append(total / STEPS)
    img_per_s = {s: round(batch_size / statistics.median(r), 1) for s, r in rounds.items()}
    return {
        "img_per_s": img_per_s,
        "round_ms": {s: [round(1000 * v, 1) for v in r] for s, r in rounds.items()},
        "warmup_s": compile_s,
        "compiled": {s: loops[s].runner.compile for s in loops},
    }


def precision_figures() -> dict:
    data = load_dataset("mnist5k")
    from benchmarks.__main__ import recipe

    speedup, by_setting, best, auto, img_per_s, setup = {}, {}, {}, {}, {}, {}
    setup_common = {"warmup_steps": WARMUP, "steps": STEPS, "rounds": ROUNDS, "threads": torch.get_num_threads()}
    for name in MODELS:
        options, batch_size = recipe(name)
        figures = measure_model(name, options, data, batch_size)
        rates = figures["img_per_s"]
        img_per_s[name] = rates
        best[name] = max(rates, key=rates.get)
        by_setting[name] = {s: round(v / rates["fp32"], 3) for s, v in rates.items()}
        speedup[name] = round(rates[best[name]] / rates["fp32"], 3)
        auto[name] = auto_precision(torch.device("cpu"), name)[0]
        setup[name] = {"batch_size": batch_size, "options": options, **figures}
        print(f"  {name}: {json.dumps(setup[name])}", file=sys.stderr, flush=True)
    return {
        "precision_speedup": speedup,
        "precision_best": best,
        "precision_speedup_by_setting": by_setting,
        "precision_auto": auto,
        "precision_img_per_s": img_per_s,
        "precision_setup": {**setup_common, **setup},
    }
