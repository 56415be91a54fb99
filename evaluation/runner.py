"""Score one run folder: sample, extract features once, compute every metric, store the row in the run.

Sample-based metrics (FID, KID, PRDC, modes, sharpness, smoothness) are repeated per seed and reported as
the mean with a ``<metric>_std`` column when there are several seeds. The real-vs-real floor,
reconstruction and likelihood do not depend on the sampling seed and are computed once. Subsets of the
test split used by the slower metrics are fixed (seeded) and their sizes are part of the row.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import torch

from generators.checkpoints import atomic_write_bytes, load_run, read_run_info
from generators.data import load_run_dataset
from generators.errors import UserError
from generators.registry import capabilities_of
from generators.samplers import GMM_FILE, SAMPLERS, latent_sampler

from .features import DEFAULT_CACHE_DIR, get_extractor, inception_extractor, require_labels
from .fid import fid_floor, frechet_distance, kernel_distance
from .inversion import INVERSION_LR, INVERSION_RESTARTS, INVERSION_STEPS, inversion_method, invert
from .likelihood import latent_usage, likelihood_bounds
from .modes import mode_stats
from .prdc import prdc
from .reconstruction import encode_decode, reconstruction_scores
from .sharpness import laplacian_variance
from .smoothness import interpolation_smoothness

METRICS_FILE = "metrics.json"
EXTRACTORS = ("classifier", "inception")
SUBSET_SEED = 0  # which real / test images are used: fixed, so every run is scored on the same images
SAMPLE_BATCH = 1000
SMALL_N = 2048
RECON_IMAGES = 2000
INVERSION_IMAGES = 16  # each costs restarts x steps generator passes, so a small fixed subset
LIKELIHOOD_IMAGES = 200
SMOOTHNESS_PAIRS = 64
SMOOTHNESS_STEPS = 8
PRDC_K = 5
SEED_METRICS = (
    "fid",
    "fid_ratio",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "density",
    "coverage",
    "modes",
    "mode_kl",
    "sharpness",
    "smoothness",
)
ROW_KEYS = (
    "run",
    "model",
    "dataset",
    "sampler",
    "extractor_id",
    "extractor_test_acc",
    "n_real",
    "n_fake",
    "seeds",
    "seconds",
    "fid",
    "fid_floor",
    "fid_ratio",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "density",
    "coverage",
    "modes",
    "mode_kl",
    "class_histogram",
    "recon_method",
    "recon_mse",
    "recon_bce",
    "recon_psnr",
    "recon_ssim",
    "elbo_nats",
    "iwae_nats",
    "elbo_bits_per_dim",
    "iwae_bits_per_dim",
    "likelihood",
    "active_units",
    "kl_per_dim",
    "sharpness",
    "smoothness",
    "warnings",
)

Progress = Callable[[float, str], None]


def settings_key(*, n: int, seeds, sampler: str, extractor_id: str, iwae_k: int, inversion_steps: int) -> str:
    """The key of a stored row: every setting that changes a number."""
    seed_text = ",".join(str(s) for s in seeds)
    return (
        f"n={n}|seeds={seed_text}|sampler={sampler}|extractor={extractor_id}|iwae_k={iwae_k}"
        f"|inversion_steps={inversion_steps}"
    )


def load_metrics(run_dir) -> dict[str, dict]:
    """The rows stored in ``<run_dir>/metrics.json`` by settings key; {} when there are none or it is unreadable."""
    try:
        stored = json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict):
        return {}
    return {k: v for k, v in stored.items() if isinstance(v, dict)}


def store_row(run_dir, key: str, row: dict) -> None:
    stored = load_metrics(run_dir)
    stored[key] = row
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, json.dumps(stored, indent=1).encode())


def _subset(count: int, size: int) -> torch.Tensor:
    """A fixed random subset of ``size`` indices out of ``count`` (the same for every run)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(SUBSET_SEED))[:size]


@torch.inference_mode()
def draw_samples(model, draw, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.cat(
        [
            model.decode(draw(min(SAMPLE_BATCH, n - start), generator)).clamp(0, 1).cpu()
            for start in range(0, n, SAMPLE_BATCH)
        ]
    )


def _validate(n, seeds, sampler, extractor, iwae_k, inversion_steps) -> tuple[int, ...]:
    if not isinstance(n, int) or n <= 0:
        raise UserError(f"--n must be a positive integer, got {n}")
    if n <= PRDC_K:
        raise UserError(f"--n must be larger than {PRDC_K} (precision/recall use {PRDC_K} nearest neighbours)")
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"give one or more distinct seeds, got {list(seeds)}")
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if extractor not in EXTRACTORS:
        raise UserError(f"unknown extractor {extractor!r}: choose one of {', '.join(EXTRACTORS)}")
    if iwae_k < 1 or inversion_steps < 1:
        raise UserError("--iwae-k and --inversion-steps must be at least 1")
    return seeds


def load_run_data(info: dict):
    return load_run_dataset(info)


def check_inputs(run_dir, *, sampler: str = "prior", extractor: str = "classifier") -> dict:
    """Every bad-input error that can be found before the long work starts (the CLI checks all runs first):
    an unreadable run, an unreachable dataset, a GMM sampler for a model without an encoder, a dataset
    without labels for the classifier extractor, Inception weights that cannot be had. Returns the run info."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    data = load_run_data(info)
    if sampler == "gmm" and not capabilities_of(info).encoder and not (run_dir / GMM_FILE).is_file():
        raise UserError(f"--sampler gmm needs a model with an encoder; {info['model']} has none (use --sampler prior)")
    if extractor == "classifier":
        require_labels(data)
    else:
        inception_extractor()
    return info


class _Stopwatch:
    """Adds the seconds spent in each named stage to ``timings`` and reports progress between stages."""

    def __init__(self, timings: dict | None, progress: Progress | None, stages: int):
        self.timings = timings if timings is not None else {}
        self.progress, self.stages, self.done = progress, stages, 0

    @contextmanager
    def stage(self, name: str):
        if self.progress:
            self.progress(min(self.done / self.stages, 0.99), name)
        start = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        self.done += 1


def evaluate_run(
    run_dir,
    *,
    n: int = 5000,
    seeds=(0,),
    sampler: str = "prior",
    extractor: str = "classifier",
    iwae_k: int = 100,
    inversion_steps: int = INVERSION_STEPS,
    progress: Progress | None = None,
    use_cache: bool = True,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    timings: dict | None = None,
) -> dict:
    """One row of metrics for the run in ``run_dir`` (see ROW_KEYS), also stored in its metrics.json.

    ``timings``, when given, receives the seconds spent per stage (used by the benchmarks).
    """
    seeds = _validate(n, seeds, sampler, extractor, iwae_k, inversion_steps)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    info = check_inputs(run_dir, sampler=sampler, extractor=extractor)
    watch = _Stopwatch(timings, progress, stages=4 + 6 * len(seeds))

    with watch.stage("load data and extractor"):
        data = load_run_data(info)
        if extractor == "inception":
            net = inception_extractor()
        else:
            within_stage = (lambda f, message: progress(f / watch.stages, message)) if progress else None
            net = get_extractor(
                info["dataset"], data.image_shape, cache_dir=cache_dir, data=data, progress=within_stage
            )
    key = settings_key(
        n=n, seeds=seeds, sampler=sampler, extractor_id=net.id, iwae_k=iwae_k, inversion_steps=inversion_steps
    )
    stored = load_metrics(run_dir).get(key) if use_cache else None
    if stored and stored.get("run_step") == info.get("step") and stored.get("run_created") == info.get("created"):
        return stored

    model, info = load_run(run_dir)
    warnings = []
    row = {k: None for k in ROW_KEYS}
    row.update(
        run=run_dir.name,
        run_dir=str(run_dir),
        model=info["model"],
        dataset=info["dataset"],
        sampler=sampler,
        extractor_id=net.id,
        extractor_test_acc=net.test_accuracy,
        n_fake=n,
        seeds=list(seeds),
        reference="train split",
        run_step=info.get("step"),
        run_created=info.get("created"),
    )

    with watch.stage("real features and floor"):
        train = data.train
        pool = train.images[_subset(len(train), min(len(train), 2 * n))].float() / 255
        pool_feats, pool_logits = net.features_and_logits(pool)
        floor, half = fid_floor(pool_feats, n)
        n_real = min(n, len(pool))
        real_images, real_feats = pool[:n_real], pool_feats[:n_real]
        real_classes = pool_logits[:n_real].argmax(1) if pool_logits is not None else None
        row.update(n_real=n_real, fid_floor=floor, fid_floor_n=half)
        real_sharpness = laplacian_variance(real_images)
    if n_real < n:
        warnings.append(f"the train split has only {len(train)} images: FID compares {n_real} real with {n} samples")
    if half < n:
        warnings.append(
            f"the floor uses two real halves of {half} (not {n}): the train split holds {len(train)}; "
            f"a floor at smaller n is higher, so fid_ratio is optimistic"
        )
    if n < SMALL_N:
        warnings.append(f"n={n} < {SMALL_N}: FID and KID are biased upwards at small n; compare runs at equal n only")
    if n < net.num_features:
        warnings.append(f"n={n} is below the feature dimension {net.num_features}: the covariance is singular")

    draw = latent_sampler(model, sampler, run_dir, train.float_images() if sampler == "gmm" else None)
    per_seed = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        scores = {}
        with watch.stage(f"sampling (seed {seed})"):
            fake = draw_samples(model, draw, n, generator)
        with watch.stage("fake features"):
            fake_feats, fake_logits = net.features_and_logits(fake)
        with watch.stage("fid and kid"):
            scores["fid"] = frechet_distance(real_feats, fake_feats)
            scores["fid_ratio"] = scores["fid"] / floor if floor > 0 else math.inf
            scores["kid_mean"], scores["kid_std"], kid_subset = kernel_distance(real_feats, fake_feats, seed)
        with watch.stage("precision, recall, density, coverage"):
            scores.update(prdc(real_feats, fake_feats, k=PRDC_K))
        with watch.stage("modes and sharpness"):
            if fake_logits is not None:
                scores.update(mode_stats(fake_logits.argmax(1), real_classes, net.num_classes))
            scores["sharpness"] = laplacian_variance(fake) / real_sharpness
        with watch.stage("smoothness"):
            scores["smoothness"] = interpolation_smoothness(
                model, net, draw, pairs=SMOOTHNESS_PAIRS, steps=SMOOTHNESS_STEPS, generator=generator
            )
        per_seed.append(scores)
    row["kid_subset_size"] = kid_subset
    row.update(_combine(per_seed))
    if net.num_classes is None:
        warnings.append(f"mode counts need the classifier extractor; {net.id} knows no classes of this dataset")

    test = data.test
    with watch.stage("reconstruction"):
        if model.capabilities.encoder:
            images = test.images[_subset(len(test), RECON_IMAGES)].float() / 255
            recon = encode_decode(model, images)
            row["recon_method"] = "encode-decode"
        else:
            images = test.images[_subset(len(test), INVERSION_IMAGES)].float() / 255
            generator = torch.Generator().manual_seed(seeds[0])
            recon = invert(
                model, images, steps=inversion_steps, restarts=INVERSION_RESTARTS, lr=INVERSION_LR, generator=generator
            )[1].cpu()
            row["recon_method"] = inversion_method(INVERSION_RESTARTS, inversion_steps)
        row.update(reconstruction_scores(recon, images), recon_n=len(images))
    with watch.stage("likelihood"):
        if model.capabilities.posterior:
            images = test.images[_subset(len(test), LIKELIHOOD_IMAGES)].float() / 255
            generator = torch.Generator().manual_seed(seeds[0])
            row.update(
                likelihood_bounds(model, images, iwae_k, generator=generator), iwae_k=iwae_k, likelihood_n=len(images)
            )
            row.update(latent_usage(model, test.images[_subset(len(test), RECON_IMAGES)].float() / 255))

    row["warnings"] = warnings
    row["seconds"] = round(time.perf_counter() - started, 2)
    row["evaluated"] = datetime.now(UTC).isoformat(timespec="seconds")
    store_row(run_dir, key, row)
    if progress:
        progress(1.0, "done")
    return row


def _combine(per_seed: list[dict]) -> dict:
    """One seed: its values. Several: the mean, plus ``<metric>_std`` (population std over seeds)."""
    if len(per_seed) == 1:
        return per_seed[0]
    combined = {}
    for name in SEED_METRICS:
        values = torch.tensor([s[name] for s in per_seed if name in s], dtype=torch.float64)
        if len(values):
            combined[name] = values.mean().item()
            combined[f"{name}_std"] = values.std(unbiased=False).item()
    histograms = [s["class_histogram"] for s in per_seed if "class_histogram" in s]
    if histograms:
        combined["class_histogram"] = [round(v, 5) for v in torch.tensor(histograms).mean(0).tolist()]
    return combined
