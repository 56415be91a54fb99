"""The committed default runs (made by ``make checkpoints``; recipes in checkpoints/README.md), defined once.

The dashboard selects these first, the benchmarks measure their recipes, and the first-run button of an empty
dashboard trains ``FIRST_RUN_MODEL`` into ``FIRST_RUN_NAME``.
"""

from __future__ import annotations

from pathlib import Path

MNIST_RUNS = ("vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k", "cvae-mnist5k", "cdcgan-mnist5k")
SPRITES_RUNS = ("vae-sprites", "vae-beta4-sprites", "ae-sprites", "dcgan-sprites")  # known factors: disentanglement
DEFAULT_RUNS = (*MNIST_RUNS, *SPRITES_RUNS)
DEFAULT_DATASET = "mnist5k"  # the data set the dashboard opens on
SELECTED_AT_START = MNIST_RUNS[:4]  # the dashboard opens on the classic four; the conditional two are a click away
FIRST_RUN_MODEL = "vae"
FIRST_RUN_NAME = "vae-mnist5k"


def default_run_dir(model: str, out_dir) -> Path | None:
    """The first default run in ``out_dir`` trained with ``model``, or None."""
    from .checkpoints import WEIGHTS, read_run_info
    from .errors import UserError

    for name in DEFAULT_RUNS:
        run = Path(out_dir) / name
        try:
            if (run / WEIGHTS).is_file() and read_run_info(run)["model"] == model:
                return run
        except UserError:
            continue
    return None


def default_recipe(model: str, out_dir) -> dict | None:
    """What ``make checkpoints`` trained ``model`` with: its model options (without the image shape), batch size,
    steps and seconds, read from the committed run's config; None when there is no such run."""
    from .checkpoints import read_run_info
    from .registry import command_line_options

    run = default_run_dir(model, out_dir)
    if run is None:
        return None
    info = read_run_info(run)
    options = command_line_options(model, info["model_config"])
    return {
        "run": run.name,
        "options": options,
        "batch_size": info["train_config"]["batch_size"],
        "steps": info.get("step"),
        "seconds": info.get("seconds"),
    }
