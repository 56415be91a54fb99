"""The committed default runs, defined once: their names and order, how each is trained (its recipe and thread
count) and how it is scored (fitted samplers, the augmentation and compression experiments).

``make checkpoints`` (scripts/make_checkpoints.sh) reads them from here through the command line below; the
dashboard selects them first, the benchmarks measure their recipes, and the first-run button of an empty
dashboard trains ``FIRST_RUN_MODEL`` into ``FIRST_RUN_NAME``. checkpoints/README.md says why each recipe is so.

    python -m generators.default_runs names              # the runs, in the order make checkpoints trains them
    python -m generators.default_runs recipe RUN         # its python -m generators train arguments
    python -m generators.default_runs threads RUN        # the thread count it is trained and scored with
    python -m generators.default_runs samplers RUN       # the fitted latent samplers it is also scored with
    python -m generators.default_runs augment|compress RUN   # yes or no: does it get that experiment?
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

# The runs train one after another, each on all cores (the budgets were set on a 2-core CPU). The thread count
# changes float rounding, so it is fixed: the same command on the same machine gives the same weights. A run
# without its own count takes OMP_NUM_THREADS from the environment, else this.
DEFAULT_THREADS = 2


@dataclass(frozen=True)
class DefaultRun:
    """One committed run: how ``make checkpoints`` trains it and what it scores it with."""

    name: str
    recipe: str  # the `python -m generators train` arguments (the model first; --run, --out-dir come after)
    threads: int | None = None  # its own thread count (the rounding it was trained with); None: see ``threads``
    fitted_samplers: tuple[str, ...] = ()  # scored with these too (they need an encoder; generators/samplers.py)
    augment: bool = False  # do its generated images help a classifier trained on few real ones? (conditional runs)
    compress: bool = False  # bits per image against distortion, beside JPEG, WebP and PNG (runs with an encoder)

    @property
    def train_args(self) -> list[str]:
        return self.recipe.split()


# The VAE family shares one architecture (z = 8, one extra 3x3 conv per stage), so β and the KL term are the only
# differences between them; the DCGAN is a narrow one with an EMA of G and the R1 penalty on D. The conditional runs
# (cvae, cdcgan) use the nets, options and steps of their unconditional twins (the EMA aside). Each run takes the
# steps that about four minutes of this 2-core CPU held on 2026-12-06 (the host's speed varies between hours by up
# to 1.8x, so the recipes are step counts and checkpoints/README.md states the seconds); every step computes in
# bf16 (weights stay fp32).
VAE_NETS = "--latent-dim 8 --extra-convs 1 --batch-size 128 --seed 0 --precision bf16 --steps 9000"
# The GANs' EMA decay of G is each one's better of 0.995 and 0.999 by FID against the train split at these steps.
# D is regularised by the R1 penalty (no BatchNorm in D), which needs the lower learning rate 1e-3 to stay stable.
GAN_NETS = (
    "--g-width 32 --d-width 32 --lr-g 1e-3 --lr-d 1e-3 --r1 1 --latent-dim 8 --batch-size 64 --seed 0 "
    "--precision bf16 --steps 8000"
)
# The sprites runs (known factors, for the disentanglement metrics): the plain nets (no extra conv), batch 64, one
# thread each (five CPU minutes; two such runs train side by side on the 2-core machine). The sprites DCGAN adds the
# hinge loss and spectral norm in D, which scored far better there (and worse on digits).
SPRITE_NETS = "--dataset sprites --latent-dim 8 --batch-size 64 --seed 0 --precision bf16"
SPRITE_GAN = "--g-width 32 --d-width 32 --lr-g 2e-3 --lr-d 2e-3 --ema 0.995 --loss hinge --spectral-norm"

MNIST = (
    DefaultRun("vae-mnist5k", f"vae {VAE_NETS}", fitted_samplers=("gmm", "two-stage"), compress=True),
    DefaultRun("vae-beta4-mnist5k", f"vae --beta 4 {VAE_NETS}", fitted_samplers=("gmm",), compress=True),
    DefaultRun("ae-mnist5k", f"ae {VAE_NETS}", fitted_samplers=("gmm",), compress=True),
    DefaultRun("dcgan-mnist5k", f"dcgan {GAN_NETS} --ema 0.999"),
    DefaultRun("cvae-mnist5k", f"cvae {VAE_NETS}", fitted_samplers=("gmm", "two-stage"), augment=True, compress=True),
    DefaultRun("cdcgan-mnist5k", f"cdcgan {GAN_NETS} --ema 0.995", augment=True),
)
SPRITES = (
    DefaultRun("vae-sprites", f"vae {SPRITE_NETS} --steps 17000", threads=1),
    DefaultRun("vae-beta4-sprites", f"vae --beta 4 {SPRITE_NETS} --steps 17000", threads=1),
    DefaultRun("ae-sprites", f"ae {SPRITE_NETS} --steps 17000", threads=1),
    DefaultRun("dcgan-sprites", f"dcgan {SPRITE_GAN} {SPRITE_NETS} --steps 4500", threads=1),
    # two more points of the β sweep (MIG against β, one recipe): the Sweeps tab and the findings read all four
    DefaultRun("vae-beta0.5-sprites", f"vae --beta 0.5 {SPRITE_NETS} --steps 17000", threads=1),
    DefaultRun("vae-beta2-sprites", f"vae --beta 2 {SPRITE_NETS} --steps 17000", threads=1),
)
RUNS = {run.name: run for run in (*MNIST, *SPRITES)}

MNIST_RUNS = tuple(run.name for run in MNIST)
SPRITES_RUNS = tuple(run.name for run in SPRITES)  # known factors: disentanglement
DEFAULT_RUNS = tuple(RUNS)
DEFAULT_DATASET = "mnist5k"  # the data set the dashboard opens on
SELECTED_AT_START = MNIST_RUNS[:4]  # the dashboard opens on the classic four; the conditional two are a click away
FIRST_RUN_MODEL = "vae"
FIRST_RUN_NAME = "vae-mnist5k"


def default_run_dir(model: str, out_dir, dataset: str | None = None) -> Path | None:
    """The first default run in ``out_dir`` trained with ``model`` — on ``dataset`` when one is, else on any —
    or None."""
    from .checkpoints import WEIGHTS, read_run_info
    from .errors import UserError

    found = []
    for name in DEFAULT_RUNS:
        run = Path(out_dir) / name
        try:
            info = read_run_info(run) if (run / WEIGHTS).is_file() else None
        except UserError:
            continue
        if info is not None and info["model"] == model:
            found.append((info["dataset"] != dataset, len(found), run))
    return min(found)[2] if found else None


def default_recipe(model: str, out_dir, dataset: str | None = None) -> dict | None:
    """What ``make checkpoints`` trained ``model`` with (on ``dataset`` where it has such a run): its model options
    (without the image shape), batch size, precision, steps and seconds, read from the committed run's config;
    None when there is no such run."""
    from .checkpoints import read_run_info
    from .registry import command_line_options

    run = default_run_dir(model, out_dir, dataset)
    if run is None:
        return None
    info = read_run_info(run)
    options = command_line_options(model, info["model_config"])
    return {
        "run": run.name,
        "options": options,
        "batch_size": info["train_config"]["batch_size"],
        "precision": info["train_config"].get("precision"),
        "steps": info.get("step"),
        "epochs": info.get("epoch"),
        "dataset": info["dataset"],
        "seconds": info.get("seconds"),
    }


def threads(run: DefaultRun) -> int | str:
    """The thread count ``run`` is trained and scored with: its own, else OMP_NUM_THREADS, else DEFAULT_THREADS."""
    return run.threads or os.environ.get("OMP_NUM_THREADS") or DEFAULT_THREADS


FIELDS = {
    "recipe": lambda run: run.recipe,
    "threads": threads,
    "samplers": lambda run: " ".join(run.fitted_samplers),
    "augment": lambda run: "yes" if run.augment else "no",
    "compress": lambda run: "yes" if run.compress else "no",
}


def main(argv: list[str]) -> int:
    """``names``, or ``FIELD RUN``: what scripts/make_checkpoints.sh and the Makefile read (see the module's doc)."""
    if argv == ["names"]:
        print("\n".join(RUNS))
        return 0
    if len(argv) == 2 and argv[0] in FIELDS and argv[1] in RUNS:
        print(FIELDS[argv[0]](RUNS[argv[1]]))
        return 0
    if len(argv) == 2 and argv[0] in FIELDS:
        print(f"error: unknown default run {argv[1]} (one of {' '.join(RUNS)})", file=sys.stderr)
    else:
        print(f"error: usage: python -m generators.default_runs names | {{{','.join(FIELDS)}}} RUN", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
