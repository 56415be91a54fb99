"""The sample metrics, shared by a run's evaluation and the sanity panel: one reference, many sample sets.

``build_reference`` extracts the real features once (a fixed, seeded subset of the train split, and the
held-out test split) and precomputes everything that depends on them alone: the real-vs-real floors, the
k-NN radii, per-block moments for the bootstrap, the copy-rate threshold. ``score_samples`` then scores one
set of generated (or corrupted real) images against it: FID, KID, precision/recall/density/coverage with
95 % bootstrap intervals, FID against the test split, copy rate, classes hit and sharpness;
``fid_against_n`` adds the FID-vs-sample-size curve and its extrapolation ``fid_inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from generators.errors import UserError

from .bootstrap import Blocks, interval
from .fid import (
    FID_BOOTSTRAP_MAX_DIM,
    FidMoments,
    KidBlocks,
    effective_n,
    fid_curve,
    fid_floor,
    fid_infinity,
    fid_replicates,
    frechet_distance,
    kernel_distance,
    kid_within,
)
from .memorization import copy_rate, copy_threshold
from .modes import mode_stats
from .prdc import PrdcBlocks, knn_radii
from .sharpness import laplacian_variance, sharpness_interval

SUBSET_SEED = 0  # which real / test images are used: fixed, so every run is scored on the same images
PRDC_K = 5
MIN_TRAIN = 2 * (PRDC_K + 1)  # two real halves for the floor, each larger than the PRDC neighbourhood
MIN_TEST = 2
FID_CURVE_SIZES = (500, 1000, 2000, 5000)
FID_CURVE_DRAWS = 50
# the parts of an evaluation that the held-out reference, the copy rate and the intervals add (benchmarked)
HELD_OUT_PART, COPY_PART, BOOTSTRAP_PART = "held-out reference", "copy rate", "bootstrap intervals"

# the range of each metric with an interval: a re-centred interval is clipped to it
RANGES = {"fid": (0.0, math.inf), "density": (0.0, math.inf), "kid_mean": (-math.inf, math.inf)}
UNIT_RANGE = (0.0, 1.0)  # precision, recall, coverage

Timer = Callable[[str], AbstractContextManager]


def untimed(name: str) -> AbstractContextManager:
    return nullcontext()


def subset(count: int, size: int) -> torch.Tensor:
    """A fixed random subset of ``size`` indices out of ``count`` (the same for every run)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(SUBSET_SEED))[:size]


def check_finite(values: torch.Tensor, what: str) -> None:
    """Refuse NaN or infinity before any linear algebra sees it (LAPACK can crash on them)."""
    if not torch.isfinite(values).all():
        raise UserError(f"{what} contain NaN or infinite values, so they cannot be scored")


def check_splits(data) -> None:
    """A dataset too small to hold a reference and a held-out split gets a clear error, not a division by zero."""
    if len(data.train) < MIN_TRAIN or len(data.test) < MIN_TEST:
        raise UserError(
            f"dataset {data.name} has {len(data.train)} training and {len(data.test)} held-out images; evaluation "
            f"needs at least {MIN_TRAIN} and {MIN_TEST} (a folder dataset holds out 10 % of each class: add images)"
        )


@dataclass
class Reference:
    """Real features and everything precomputed from them (see the module docstring)."""

    feats: torch.Tensor
    classes: torch.Tensor | None
    num_classes: int | None
    sharpness: float
    floor: float
    floor_n: int
    pool_feats: torch.Tensor
    test_feats: torch.Tensor
    test_floor: float
    test_n_fake: int
    copy_threshold: float
    blocks: Blocks
    moments: FidMoments | None
    kid_real: tuple
    radii: torch.Tensor

    @property
    def n_real(self) -> int:
        return len(self.feats)


def build_reference(net, data, n: int, timed: Timer = untimed) -> Reference:
    """The reference for ``n`` samples: up to 2n train images (n for FID, all of them for the floor and the
    copy rate) and up to n test images, all scored by extractor ``net``."""
    check_splits(data)
    train, test = data.train, data.test
    pool = train.images[subset(len(train), min(len(train), 2 * n))].float() / 255
    pool_feats, pool_logits = net.features_and_logits(pool)
    n_real = min(n, len(pool))
    sharpness = laplacian_variance(pool[:n_real])
    if sharpness == 0:
        raise UserError(f"the images of dataset {data.name} are blank (no edges at all): there is nothing to compare")
    feats = pool_feats[:n_real]
    floor, floor_n = fid_floor(pool_feats, n)
    test_n_fake = min(n, len(pool_feats))
    with timed(HELD_OUT_PART):
        test_feats = net.features_and_logits(test.images[subset(len(test), min(len(test), n))].float() / 255)[0]
        test_floor = frechet_distance(pool_feats[:test_n_fake], test_feats)
    with timed(COPY_PART):
        threshold = copy_threshold(test_feats, pool_feats)
    blocks = Blocks.random(n_real, SUBSET_SEED)
    with timed(BOOTSTRAP_PART):
        # FID resampling needs one d x d eigendecomposition per replicate: too slow for Inception's 2 048 features
        moments = FidMoments(feats, blocks) if feats.shape[1] <= FID_BOOTSTRAP_MAX_DIM else None
        kid_real = kid_within(feats, blocks)
    return Reference(
        feats=feats,
        classes=pool_logits[:n_real].argmax(1) if pool_logits is not None else None,
        num_classes=net.num_classes,
        sharpness=sharpness,
        floor=floor,
        floor_n=floor_n,
        pool_feats=pool_feats,
        test_feats=test_feats,
        test_floor=test_floor,
        test_n_fake=test_n_fake,
        copy_threshold=threshold,
        blocks=blocks,
        moments=moments,
        kid_real=kid_real,
        radii=knn_radii(feats.float(), PRDC_K),
    )


def reference_info(ref: Reference) -> dict:
    """The sizes and floors of a reference, as row fields."""
    return {
        "n_real": ref.n_real,
        "fid_floor": ref.floor,
        "fid_floor_n": ref.floor_n,
        "n_test": len(ref.test_feats),
        "fid_test_floor": ref.test_floor,
        "fid_test_n_fake": ref.test_n_fake,
        "copy_n_train": len(ref.pool_feats),
    }


def score_samples(
    ref: Reference, images, feats, logits, *, seed: int, bootstrap: int, what: str = "samples", timed: Timer = untimed
) -> dict:
    """Every sample metric of one set of images (in [0, 1]) with its features and class logits; ``timed``
    times the parts the benchmarks report."""
    check_finite(feats, f"the features of {what}")
    scores = {"fid": frechet_distance(ref.feats, feats)}
    scores["fid_ratio"] = scores["fid"] / ref.floor if ref.floor > 0 else math.inf
    scores["kid_mean"], scores["kid_std"], scores["kid_subset_size"] = kernel_distance(ref.feats, feats, seed)
    with timed(HELD_OUT_PART):
        scores["fid_test"] = frechet_distance(ref.test_feats, feats[: ref.test_n_fake])
    with timed(COPY_PART):
        scores["copy_rate"] = copy_rate(feats, ref.pool_feats, ref.copy_threshold)
    if logits is not None:
        scores.update(mode_stats(logits.argmax(1), ref.classes, ref.num_classes))
    scores["sharpness"] = laplacian_variance(images) / ref.sharpness
    fake_blocks = Blocks.random(len(feats), seed + 1)
    prdc = PrdcBlocks(ref.feats, feats, ref.blocks, fake_blocks, k=PRDC_K, real_radii=ref.radii)
    ones = torch.ones(1, ref.blocks.count), torch.ones(1, fake_blocks.count)
    scores.update({name: value.item() for name, value in prdc.replicates(*ones).items()})
    with timed(BOOTSTRAP_PART):  # the per-block moments also serve FID against n (charged here, to be safe)
        moments = FidMoments(feats, fake_blocks) if ref.moments is not None else None
    if bootstrap:
        with timed(BOOTSTRAP_PART):
            scores["sharpness_ci_low"], scores["sharpness_ci_high"] = sharpness_interval(
                images, ref.sharpness, bootstrap, seed
            )
            replicates = _replicates(ref, feats, fake_blocks, moments, prdc, seed=seed, bootstrap=bootstrap)
            for name, values in replicates.items():
                lower, upper = RANGES.get(name, UNIT_RANGE)
                scores[f"{name}_ci_low"], scores[f"{name}_ci_high"] = interval(
                    values, scores[name], lower=lower, upper=upper
                )
    if moments is not None:
        with timed("fid against n"):
            scores.update(_fid_against_n(ref, moments, scores, seed=seed))
    return scores


def _replicates(ref: Reference, feats, fake_blocks: Blocks, moments, prdc: PrdcBlocks, *, seed: int, bootstrap: int):
    """Bootstrap replicates by metric; real and generated blocks are redrawn together in each replicate
    (without ``moments``, i.e. with Inception, only KID and PRDC get them)."""
    counts_real = ref.blocks.resample(bootstrap, seed=10_000 + seed)
    counts_fake = fake_blocks.resample(bootstrap, seed=20_000 + seed)
    replicates = prdc.replicates(counts_real, counts_fake)
    replicates["kid_mean"] = KidBlocks(ref.feats, feats, ref.blocks, fake_blocks, ref.kid_real).replicates(
        counts_real, counts_fake
    )
    if moments is not None:
        replicates["fid"] = fid_replicates(ref.moments, moments, counts_real, counts_fake)
    return replicates


def _fid_against_n(ref: Reference, moments: FidMoments, scores: dict, *, seed: int) -> dict:
    """``fid_curve``: FID at each of FID_CURVE_SIZES below the sets' sizes (mean and spread of random
    sub-samples), ending with the FID of all samples and its bootstrap interval; ``fid_inf``: the line through
    them in 1/n, extrapolated to infinitely many samples."""
    largest = min(ref.n_real, moments.blocks.n)
    sizes = [size for size in FID_CURVE_SIZES if size < largest]
    points = fid_curve(ref.moments, moments, sizes, FID_CURVE_DRAWS, seed=50_000 + seed)
    points.append(
        {
            "n": round(effective_n(ref.n_real, moments.blocks.n)),
            "fid": scores["fid"],
            "ci_low": scores.get("fid_ci_low"),
            "ci_high": scores.get("fid_ci_high"),
        }
    )
    return {"fid_curve": points, "fid_inf": fid_infinity(points)}
