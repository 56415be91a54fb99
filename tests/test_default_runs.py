"""The committed default runs (checkpoints/, made by `make checkpoints`): each one loads, samples, and
re-evaluating it reproduces the metrics recorded in its metrics.json.

The re-evaluation uses the small-n row (n = CHECK_N, prior sampler) that `make checkpoints` records next
to the n = 5 000 rows, so it compares against a stored value, not a number copied into this file.
Tolerance: FID, FID ratio and KID within REL_TOLERANCE (relative); precision, recall, density and
coverage within ABS_TOLERANCE; the number of classes hit exactly. Sampling and scoring are seeded, so
with the same extractor (the committed checkpoints/_extractors/mnist5k classifier) they agree far more
closely; the slack covers an extractor retrained on another machine, e.g. after that file was deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from evaluation import evaluate_run, load_metrics
from evaluation.disentanglement import KEYS as DISENTANGLEMENT_KEYS
from generators.checkpoints import RESUME, load_run, read_history, read_run_info
from generators.default_runs import DEFAULT_RUNS, SPRITES_RUNS
from tests.helpers import ROOT

CHECK_N = 1000
REL_TOLERANCE = 0.05
ABS_TOLERANCE = 0.03
# the VAE family is the largest: its two 3136 x 256 fc layers make ~7 MB of fp32 (4096 x 256 at 32 x 32: ~8.7 MB),
# and a sprites run's history.csv of 17 000 steps (one row each) adds ~3 MB
MAX_FOLDER_BYTES = 12 * 2**20
RELATIVE_METRICS = ("fid", "fid_ratio", "kid_mean")
ABSOLUTE_METRICS = ("precision", "recall", "density", "coverage")


def run_path(name: str) -> Path:
    path = ROOT / "checkpoints" / name
    if not path.is_dir():
        pytest.fail(f"{path} is missing: regenerate the default runs with `make checkpoints`")
    return path


def recorded_row(run_dir: Path, n: int, sampler: str) -> dict:
    rows = [row for key, row in load_metrics(run_dir).items() if key.startswith(f"n={n}|seeds=0|sampler={sampler}|")]
    assert rows, f"{run_dir}/metrics.json has no row for n={n}, seed 0, sampler {sampler}: run `make checkpoints`"
    return rows[0]


@pytest.mark.parametrize("name", DEFAULT_RUNS)
def test_run_is_complete_and_small(name):
    run_dir = run_path(name)
    for required in ("model.safetensors", "history.csv", "preview.png", "metrics.json"):
        assert (run_dir / required).is_file(), f"{run_dir} lacks {required}"
    assert not (run_dir / RESUME).exists(), "resume.pt holds optimizer state and is not committed"
    assert sum(f.stat().st_size for f in run_dir.iterdir() if f.is_file()) <= MAX_FOLDER_BYTES
    _, info = load_run(run_dir)
    history = read_history(run_dir)
    assert history and history[-1]["step"] == info["step"] == info["train_config"]["steps"]


@pytest.mark.parametrize("name", DEFAULT_RUNS)
def test_run_loads_and_samples_reproducibly(name):
    model, info = load_run(run_path(name))
    with torch.inference_mode():
        first = model.sample(16, generator=torch.Generator().manual_seed(3))
        again = model.sample(16, generator=torch.Generator().manual_seed(3))
        alone = model.sample(4, generator=torch.Generator().manual_seed(3))
    assert first.shape == (16, *info["image_shape"])
    assert torch.isfinite(first).all() and first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again)
    assert torch.allclose(first[:4], alone, atol=1e-5), "a sample must not depend on the batch it is drawn in"
    caps = model.capabilities
    if caps.posterior or caps.discriminator:  # N(0, I) is what these were trained to sample from
        assert first.std(0).mean() > 0.05, "the samples are (nearly) all the same image"
    # a plain autoencoder's codes were never pulled towards N(0, I): its prior samples may all fall in one corner
    # of its code space (that is the lesson of its rows; its fitted sampler is scored instead)


@pytest.mark.parametrize("name", DEFAULT_RUNS)
def test_reevaluation_reproduces_recorded_metrics(name, tmp_path):
    source = run_path(name)
    recorded = recorded_row(source, CHECK_N, "prior")
    run_dir = shutil.copytree(source, tmp_path / name)  # the committed metrics.json stays untouched
    row = evaluate_run(
        run_dir, n=CHECK_N, seeds=(0,), sampler="prior", use_cache=False, cache_dir=ROOT / "checkpoints" / "_extractors"
    )
    for metric in RELATIVE_METRICS:
        assert row[metric] == pytest.approx(recorded[metric], rel=REL_TOLERANCE), metric
    for metric in ABSOLUTE_METRICS:
        assert row[metric] == pytest.approx(recorded[metric], abs=ABS_TOLERANCE), metric
    assert row["modes"] == recorded["modes"]
    # data sets with known factors: within ABS_TOLERANCE, or inside the recorded 95 % interval (a GAN's codes come
    # from an encoder fitted anew, whose float rounding follows the thread count: its FactorVAE score moves by more)
    for metric in DISENTANGLEMENT_KEYS if recorded.get("mig") is not None else ():
        low, high = recorded[f"{metric}_ci_low"], recorded[f"{metric}_ci_high"]
        assert abs(row[metric] - recorded[metric]) <= ABS_TOLERANCE or low <= row[metric] <= high, metric


@pytest.mark.parametrize("name", SPRITES_RUNS)
def test_sprites_runs_carry_every_disentanglement_score_with_its_interval(name):
    row = recorded_row(run_path(name), 5000, "prior")
    for key in DISENTANGLEMENT_KEYS:
        assert row[f"{key}_ci_low"] <= row[key] <= row[f"{key}_ci_high"], key
        assert 0 <= row[f"{key}_ci_low"] and row[f"{key}_ci_high"] <= 1, key
    codes = {"vae": "posterior mean", "ae": "encoder", "dcgan": "encoder fitted to"}  # every model is scored
    assert row["codes_method"].startswith(codes[read_run_info(run_path(name))["model"]])


GOALS = {  # quality goals: (run, sampler) -> (max FID ratio, min coverage, min classes hit), at n = 5 000
    ("dcgan-mnist5k", "prior"): (5.0, 0.85, 10),
    ("vae-mnist5k", "prior"): (25.0, 0.75, 10),
    ("vae-mnist5k", "gmm"): (8.0, 0.85, 10),
}


@pytest.mark.parametrize("run_and_sampler", GOALS, ids=lambda k: "-".join(k))
def test_recorded_quality_meets_goal(run_and_sampler):
    name, sampler = run_and_sampler
    row = recorded_row(run_path(name), 5000, sampler)
    max_ratio, min_coverage, min_modes = GOALS[run_and_sampler]
    assert row["fid_ratio"] <= max_ratio and row["coverage"] >= min_coverage and row["modes"] >= min_modes, (
        f"{name} ({sampler}): FID ratio {row['fid_ratio']:.2f} (goal <= {max_ratio}), coverage "
        f"{row['coverage']:.2f} (goal >= {min_coverage}), classes {row['modes']} (goal >= {min_modes})"
    )


HELD_OUT_GOALS = {  # (run, sampler) -> the most FID on the test split may exceed its floor by (n = 5 000)
    ("vae-mnist5k", "prior"): 6.0,
    ("vae-mnist5k", "gmm"): 3.0,
    ("dcgan-mnist5k", "prior"): 1.9,
    ("cdcgan-mnist5k", "prior"): 1.5,
}


@pytest.mark.parametrize("run_and_sampler", HELD_OUT_GOALS, ids=lambda k: "-".join(k))
def test_recorded_held_out_fid_meets_goal(run_and_sampler):
    """The goals the bf16 recipes were retrained for, on the project's held-out FID (test split / its floor)."""
    row = recorded_row(run_path(run_and_sampler[0]), 5000, run_and_sampler[1])
    ratio = row["fid_test"] / row["fid_test_floor"]
    assert ratio <= HELD_OUT_GOALS[run_and_sampler], f"{run_and_sampler}: held-out FID / floor {ratio:.2f}"


def test_autoencoder_prior_samples_are_worse_than_the_vae():
    """The AE was never pulled towards N(0, I), so its prior samples must be clearly worse than the VAE's."""
    ae = recorded_row(run_path("ae-mnist5k"), 5000, "prior")
    vae = recorded_row(run_path("vae-mnist5k"), 5000, "prior")
    assert ae["fid_ratio"] > vae["fid_ratio"]


@pytest.mark.parametrize("name", ["vae-mnist5k", "vae-beta4-mnist5k"])
def test_recorded_anomaly_auc_is_the_rank_based_auc_of_the_same_scores(name):
    """The committed VAEs' anomaly AUCs, recomputed from their own per-image scores with the Mann-Whitney
    formula (ties at mid-rank), agree to 1e-6 (torchmetrics once read 0.50 here for a perfect separation)."""
    from scipy.stats import rankdata

    from evaluation import diagnostics
    from generators.data import load_run_dataset

    run_dir = run_path(name)
    row = recorded_row(run_dir, CHECK_N, "prior")
    model, info = load_run(run_dir)
    model.eval()
    images = diagnostics.anomaly_test_images(load_run_dataset(info).test)
    inliers, outlier_sets = diagnostics.anomaly_score_sets(model, images, seed=0)
    for kind, outliers in outlier_sets.items():
        ranks = rankdata([*inliers, *outliers])
        n_in, n_out = len(inliers), len(outliers)
        reference = (ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out)
        assert row[f"anomaly_auc_{kind}"] == pytest.approx(reference, abs=1e-6), kind


def test_the_recipe_offered_for_a_model_is_the_one_of_the_chosen_data_set():
    """The Train tab and a new β sweep start from the committed recipe of that model on that data set."""
    from generators.default_runs import default_recipe

    checkpoints = ROOT / "checkpoints"
    sprites = default_recipe("vae", checkpoints, "sprites")
    assert sprites["run"] == "vae-sprites" and sprites["batch_size"] == 64 and sprites["precision"] == "bf16"
    assert default_recipe("vae", checkpoints, "mnist5k")["run"] == "vae-mnist5k"
    assert default_recipe("vae", checkpoints)["run"] == "vae-mnist5k"  # no data set: the first default run
    assert default_recipe("dcgan", checkpoints, "cifar10")["run"] == "dcgan-mnist5k"  # none there: any
