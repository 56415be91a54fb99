"""Shared fixtures. ``dashboard_runs``: tiny trained runs (one of each model) for the dashboard tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Small networks and a few steps: the dashboard tests check wiring and behaviour, not image quality.
TINY_RUNS = {
    "vae-mnist5k": ("vae", {"latent_dim": 8, "base_width": 8, "hidden_dim": 32}),
    "vae-beta4-mnist5k": ("vae", {"latent_dim": 8, "base_width": 8, "hidden_dim": 32, "beta": 4.0}),
    "ae-mnist5k": ("ae", {"latent_dim": 8, "base_width": 8, "hidden_dim": 32}),
    "dcgan-mnist5k": ("dcgan", {"latent_dim": 8, "g_width": 8, "d_width": 8}),
}
TINY_STEPS = 12
METRICS_N = 200


@pytest.fixture(scope="session")
def dashboard_runs(tmp_path_factory) -> Path:
    """A checkpoints folder with the four default run names, trained for a few steps, with small-n metrics.

    The evaluation's feature extractor is cached under the same temp folder (never the repo's checkpoints/).
    """
    from generators.training import TrainConfig, run_training

    root = tmp_path_factory.mktemp("dashboard")
    out_dir = root / "checkpoints"
    for name, (model, options) in TINY_RUNS.items():
        cfg = TrainConfig(steps=TINY_STEPS, batch_size=32, seed=0, device="cpu", log_every=1)
        run_training(model, options, cfg, out_dir / name, show_progress=False)
    evaluate_tiny_runs(out_dir, root)
    return out_dir


def evaluate_tiny_runs(out_dir: Path, work_dir: Path) -> None:
    """Store small-n metric rows for every run; relative cache paths of the evaluation land in ``work_dir``."""
    try:
        from evaluation import evaluate_run
    except ImportError:  # evaluation not there yet: the metric views then show their "compute" hint
        return
    previous = Path.cwd()
    os.chdir(work_dir)
    try:
        for run_dir in sorted(out_dir.iterdir()):
            evaluate_run(run_dir, n=METRICS_N, iwae_k=4)
    finally:
        os.chdir(previous)
