"""Shared fixtures. ``dashboard_runs``: tiny trained runs (one of each model) for the dashboard tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import train_tiny_run

# Small networks and a few steps: the dashboard tests check wiring and behaviour, not image quality.
TINY_RUNS = {  # the default runs' names and latent size (and β), with tiny nets
    "vae-mnist5k": ("vae", {"latent_dim": 8}),
    "vae-beta4-mnist5k": ("vae", {"latent_dim": 8, "beta": 4.0}),
    "ae-mnist5k": ("ae", {"latent_dim": 8}),
    "dcgan-mnist5k": ("dcgan", {"latent_dim": 8}),
}
TINY_STEPS = 12
METRICS_N = 100
EXTRACTOR_EPOCHS = 1
EXTRACTOR_WIDTH = 32
EXTRACTOR_TRAIN_IMAGES = 1000


@pytest.fixture(scope="session")
def dashboard_runs(tmp_path_factory) -> Path:
    """A checkpoints folder with the four default run names, trained for a few steps, with small-n metrics.

    The evaluation's feature extractor is cached in ``<folder>/_extractors``, where the dashboard looks for
    it (never the repo's checkpoints/).
    """
    root = tmp_path_factory.mktemp("dashboard")
    out_dir = root / "checkpoints"
    for name, (model, options) in TINY_RUNS.items():
        train_tiny_run(model, out_dir / name, TINY_STEPS, options=options)
    evaluate_tiny_runs(out_dir)
    return out_dir


def evaluate_tiny_runs(out_dir: Path) -> None:
    """Store small-n metric rows for every run, scored by a quick one-epoch extractor (the default takes minutes).

    The quick extractor is put where the default one would be cached, so ``evaluate_run`` and the
    dashboard's "Compute" button both pick it up.
    """
    from evaluation import evaluate_run
    from evaluation.features import extractor_path, get_extractor
    from generators.data import ImageData, ImageSplit, load_dataset

    cache_dir = out_dir / "_extractors"
    full = load_dataset("mnist5k")
    few = ImageSplit(full.train.images[:EXTRACTOR_TRAIN_IMAGES], full.train.labels[:EXTRACTOR_TRAIN_IMAGES])
    data = ImageData(full.name, few, full.test, full.class_names)
    get_extractor(
        "mnist5k", data.image_shape, cache_dir=cache_dir, data=data, epochs=EXTRACTOR_EPOCHS, width=EXTRACTOR_WIDTH
    )
    quick = next(cache_dir.rglob(f"*-e{EXTRACTOR_EPOCHS}w{EXTRACTOR_WIDTH}.*"))
    shutil.copyfile(quick, extractor_path(cache_dir, "mnist5k", data.image_shape))
    for run_dir in sorted(p for p in out_dir.iterdir() if not p.name.startswith("_")):
        evaluate_run(run_dir, n=METRICS_N, iwae_k=4, inversion_steps=10, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def mixed_runs(dashboard_runs, tmp_path_factory) -> Path:
    """A checkpoints folder with runs of two data sets: two tiny mnist5k runs and a tiny VAE on sprites."""
    out_dir = tmp_path_factory.mktemp("mixed") / "checkpoints"
    for name in ("vae-mnist5k", "dcgan-mnist5k"):
        shutil.copytree(dashboard_runs / name, out_dir / name)
    train_tiny_run("vae", out_dir / "vae-sprites", TINY_STEPS, options={"latent_dim": 5}, dataset="sprites")
    return out_dir
