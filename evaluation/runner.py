"""Score one run folder: the stages of ``evaluate_run``, in the order they run.

1. ``_open``: check the settings and the run, load its dataset and the feature extractor, hash its weights;
   a stored row made with the same settings from the same weights is returned as it is.
2. ``_reference_stage``: real features once (a fixed, seeded train subset and the held-out test split).
3. ``_sample_stage``: per sampling seed, draw samples and score them (``scoring.score_samples``: FID, KID,
   PRDC with bootstrap intervals, FID on the test split, copy rate, classes, sharpness), plus the latent
   smoothness; several seeds are reported as the mean with ``<metric>_std``.
4. ``CAPABILITY_STAGES``: metrics that exist only for some models, each run when the model's capabilities
   allow (reconstruction for all, by encode-decode or latent inversion; likelihood for a posterior). A new
   kind of metric (e.g. for class-conditional models) is one more ``Stage`` here.
5. ``_finish``: the protocol, the warnings and the time; the row is stored in the run's metrics.json.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from generators.checkpoints import load_run, read_run_info
from generators.data import load_run_dataset
from generators.errors import UserError
from generators.registry import capabilities_of
from generators.samplers import SAMPLERS, encode_all, latent_sampler, needs_encoder
from generators.trainer import first_non_finite

from .bootstrap import DEFAULT_B
from .diagnostics import anomaly_detection, anomaly_test_images
from .disentanglement import KEYS as DISENTANGLEMENT_KEYS
from .disentanglement import score_run as disentanglement_scores
from .features import DEFAULT_CACHE_DIR, get_extractor, inception_extractor, require_labels
from .heldout import held_out_share
from .inversion import INVERSION_LR, INVERSION_RESTARTS, INVERSION_STEPS, inversion_method, invert
from .likelihood import latent_usage, likelihood_bounds
from .memorization import nearest_gallery
from .metric_specs import METRICS
from .protocol import REFERENCE, make_protocol
from .reconstruction import encode_decode, reconstruction_scores
from .scoring import PRDC_K, build_reference, check_finite, check_splits, reference_info, score_samples, subset
from .smoothness import PAIRS as SMOOTHNESS_PAIRS
from .smoothness import interpolation_smoothness
from .store import METRICS_FILE, is_current, load_metrics, settings_key, store_row, weights_sha256

__all__ = ["METRICS_FILE", "check_inputs", "evaluate_run", "is_current", "load_metrics", "settings_key"]

EXTRACTORS = ("classifier", "inception")
SAMPLE_BATCH = 1000
SMALL_N = 2048
MAX_BOOTSTRAP = 10_000
RECON_IMAGES = 2000
INVERSION_IMAGES = 16  # each costs restarts x steps generator passes, so a small fixed subset
LIKELIHOOD_IMAGES = 200
SMOOTHNESS_IMAGES = 1000  # test images whose codes are the interpolations' ends (a model with an encoder)
INFO_KEYS = ("run", "model", "dataset", "sampler", "extractor_id", "extractor_test_acc", "n_real", "n_fake", "seeds")
# every row has these keys (None where a metric does not apply): the metric table's keys and the lists
ROW_KEYS = (
    *INFO_KEYS,
    *METRICS,
    "class_histogram",
    "recon_method",
    "codes_method",
    "likelihood",
    "kl_per_dim",
    "fid_curve",
    "warnings",
)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Settings:
    """Every choice that changes a number (with the cache folder of the extractor)."""

    n: int
    seeds: tuple[int, ...]
    sampler: str
    extractor: str
    iwae_k: int
    inversion_steps: int
    bootstrap: int
    cache_dir: str | Path


@dataclass
class Context:
    """What the stages of one evaluation share."""

    run_dir: Path
    settings: Settings
    info: dict
    data: object
    net: object
    weights_hash: str | None
    watch: _Stopwatch
    warnings: list[str] = field(default_factory=list)


class _Stopwatch:
    """Adds the seconds spent in each named stage to ``timings`` and reports progress between stages."""

    def __init__(self, timings: dict | None, progress: Progress | None, stages: int):
        self.timings = timings if timings is not None else {}
        self.progress, self.stages, self.done = progress, stages, 0

    @contextmanager
    def stage(self, name: str):
        """A top-level stage: reported as progress, and timed."""
        if self.progress:
            self.progress(min(self.done / self.stages, 0.99), name)
        with self.timed(name):
            yield
        self.done += 1

    @contextmanager
    def timed(self, name: str):
        """A part of a stage: timed only (the benchmarks read the parts)."""
        start = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def check_cache_dir(cache_dir) -> None:
    """The extractor cache must be (or be creatable as) a folder: a file on its path is a clear error."""
    path = Path(cache_dir)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"--extractor-dir {path}: {existing} is a file, not a folder; give a folder for the extractors")


def _validate(n, seeds, sampler, extractor, iwae_k, inversion_steps, bootstrap, cache_dir) -> Settings:
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
    if not isinstance(bootstrap, int) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise UserError(f"--bootstrap must be an integer from 0 (no intervals) to {MAX_BOOTSTRAP}, got {bootstrap}")
    check_cache_dir(cache_dir)
    return Settings(n, seeds, sampler, extractor, iwae_k, inversion_steps, bootstrap, cache_dir)


def check_inputs(run_dir, *, sampler: str = "prior", extractor: str = "classifier") -> dict:
    """Every bad-input error that can be found before the long work starts (the CLI checks all runs first):
    an unreadable run, an unreachable or too small dataset, a GMM sampler for a model without an encoder, a
    dataset without labels for the classifier extractor, Inception weights that cannot be had. Returns the
    run info."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    data = load_run_dataset(info)
    check_splits(data)
    if needs_encoder(sampler) and not capabilities_of(info).encoder:
        raise UserError(
            f"--sampler {sampler} needs a model with an encoder; {info['model']} has none (use --sampler prior)"
        )
    if extractor == "classifier":
        require_labels(data)
    else:
        inception_extractor()
    return info


@contextmanager
def overflow_guard(model, what: str):
    """Refuse a network whose layers overflow: a saturating last layer (tanh, sigmoid) can turn infinite
    activations into finite, meaningless images, so every layer's output is checked, not only the last."""
    overflowed = []

    def check(module, inputs, output):
        if not overflowed and isinstance(output, torch.Tensor) and not torch.isfinite(output).all():
            overflowed.append(module)

    names = {module: name for name, module in model.named_modules()}
    handles = [module.register_forward_hook(check) for module in names]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
    if overflowed:
        raise UserError(
            f"{what}: layer {names[overflowed[0]] or 'output'!r} gives NaN or infinite values (the weights are "
            f"broken or far too large), so they cannot be scored"
        )


@torch.inference_mode()
def draw_samples(model, draw, n: int, generator: torch.Generator, name: str = "the run") -> torch.Tensor:
    """``n`` samples in [0, 1]; a generator that overflows anywhere is refused (see ``overflow_guard``)."""
    with overflow_guard(model, f"the samples of {name}"):
        images = [
            model.decode(draw(min(SAMPLE_BATCH, n - start), generator)).cpu() for start in range(0, n, SAMPLE_BATCH)
        ]
    images = torch.cat(images)
    check_finite(images, f"the samples of {name}")  # a NaN made after the last layer (e.g. by a functional op)
    return images.clamp(0, 1)


def run_gallery(
    run_dir, *, samples: int = 8, k: int = 3, seed: int = 0, sampler: str = "prior", cache_dir=None
) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """(sample images, the run's training images (uint8), ``nearest_gallery`` rows) for a run folder, with the
    run's own feature extractor: what the dashboard's and the report's gallery show."""
    model, info = load_run(Path(run_dir))
    data = load_run_dataset(info)
    net = get_extractor(info["dataset"], data.image_shape, cache_dir=cache_dir or DEFAULT_CACHE_DIR, data=data)
    draw = latent_sampler(model, sampler, Path(run_dir))
    images = draw_samples(model, draw, samples, torch.Generator().manual_seed(seed), name=Path(run_dir).name)
    return images, data.train.images, nearest_gallery(images, data.train.images, net, k)


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
    bootstrap: int = DEFAULT_B,
) -> dict:
    """One row of metrics for the run in ``run_dir``, also stored in its metrics.json.

    ``timings``, when given, receives the seconds spent per stage (used by the benchmarks).
    """
    started = time.perf_counter()
    settings = _validate(n, seeds, sampler, extractor, iwae_k, inversion_steps, bootstrap, cache_dir)
    ctx = _open(Path(run_dir), settings, progress, timings)
    key = settings_key(
        n=n,
        seeds=settings.seeds,
        sampler=sampler,
        extractor_id=ctx.net.id,
        iwae_k=iwae_k,
        inversion_steps=inversion_steps,
        bootstrap=bootstrap,
    )
    stored = load_metrics(ctx.run_dir).get(key) if use_cache else None
    if stored and ctx.weights_hash is not None and stored.get("weights_sha256") == ctx.weights_hash:
        return {**stored, "run": ctx.run_dir.name, "run_dir": str(ctx.run_dir)}  # labelled by where it was read
    model = _load_model(ctx)
    row = _new_row(ctx, model)
    reference = _reference_stage(ctx, row)
    _sample_stage(ctx, model, reference, row)
    for stage in CAPABILITY_STAGES:
        if stage.applies_to(model.capabilities):
            with ctx.watch.stage(stage.name):
                row.update(stage.run(ctx, model))
    return _finish(ctx, key, row, started, progress)


def _open(run_dir: Path, settings: Settings, progress: Progress | None, timings: dict | None) -> Context:
    if not run_dir.name:  # "." or ".." (evaluation run from inside a run folder): name the row by the real folder
        run_dir = run_dir.resolve()
    info = check_inputs(run_dir, sampler=settings.sampler, extractor=settings.extractor)
    watch = _Stopwatch(timings, progress, stages=2 + 3 * len(settings.seeds) + len(CAPABILITY_STAGES))
    with watch.stage("load data and extractor"):
        data = load_run_dataset(info)
        if settings.extractor == "inception":
            net = inception_extractor()
        else:
            within = (lambda f, message: progress(f / watch.stages, message)) if progress else None
            net = get_extractor(
                info["dataset"], data.image_shape, cache_dir=settings.cache_dir, data=data, progress=within
            )
    return Context(run_dir, settings, info, data, net, weights_sha256(run_dir), watch)


def _load_model(ctx: Context):
    model, ctx.info = load_run(ctx.run_dir)
    bad = first_non_finite(model.state_dict())
    if bad is not None:
        raise UserError(
            f"run {ctx.run_dir.name}: weight {bad!r} holds NaN or infinity, so the run cannot be evaluated; "
            f"retrain it or resume from a good checkpoint"
        )
    return model


def _new_row(ctx: Context, model) -> dict:
    settings, capabilities = ctx.settings, model.capabilities
    row = dict.fromkeys(ROW_KEYS)
    row.update(
        run=ctx.run_dir.name,
        run_dir=str(ctx.run_dir),
        model=ctx.info["model"],
        dataset=ctx.info["dataset"],
        sampler=settings.sampler,
        extractor_id=ctx.net.id,
        extractor_test_acc=ctx.net.test_accuracy,
        n_fake=settings.n,
        seeds=list(settings.seeds),
        bootstrap=settings.bootstrap,
        reference=REFERENCE,
        run_step=ctx.info.get("step"),
        run_created=ctx.info.get("created"),
        weights_sha256=ctx.weights_hash,
        capabilities={k: v for k, v in dataclasses.asdict(capabilities).items() if k not in ("title", "latent_shape")},
    )
    return row


def _reference_stage(ctx: Context, row: dict):
    n, net = ctx.settings.n, ctx.net
    with ctx.watch.stage("real features and floors"):
        reference = build_reference(net, ctx.data, n, timed=ctx.watch.timed)
    row.update(reference_info(reference))
    train = len(ctx.data.train)
    if reference.n_real < n:
        ctx.warnings.append(
            f"the train split has only {train} images: FID compares {reference.n_real} real images with {n} samples"
        )
    if reference.floor_n < n:
        ctx.warnings.append(
            f"the floor uses two real halves of {reference.floor_n} (not {n}): the train split holds {train}; "
            f"a floor at smaller n is higher, so FID / floor is optimistic"
        )
    if n < SMALL_N:
        ctx.warnings.append(f"n={n} < {SMALL_N}: FID and KID are biased upwards at small n; compare runs at equal n")
    if n < net.num_features:
        ctx.warnings.append(f"n={n} is below the feature dimension {net.num_features}: the covariance is singular")
    if net.num_classes is None:
        ctx.warnings.append(f"mode counts need the classifier extractor; {net.id} knows no classes of this dataset")
    return reference


def smoothness_endpoints(ctx: Context, model, draw):
    """Where the roughness metric's interpolations start and end: the codes of test images for a model with an
    encoder — the part of its latent space its images occupy (an autoencoder's codes are not tied to N(0, I) and
    spread far wider, so paths between N(0, I) draws would stay in a corner of its space) — and draws of the
    sampler for a model without one."""
    if not model.capabilities.encoder:
        return draw
    images, labels = _test_subset(ctx, model, SMOOTHNESS_IMAGES)
    with torch.inference_mode():
        codes = encode_all(model, images, labels)

    def test_codes(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return codes[torch.randint(len(codes), (n,), generator=generator)].to(model.device)

    return test_codes


def _sample_stage(ctx: Context, model, reference, row: dict) -> None:
    settings, watch, name = ctx.settings, ctx.watch, ctx.run_dir.name
    draw = latent_sampler(model, settings.sampler, ctx.run_dir)
    ends = smoothness_endpoints(ctx, model, draw)
    per_seed = []
    for seed in settings.seeds:
        generator = torch.Generator().manual_seed(seed)
        with watch.stage(f"sampling (seed {seed})"):
            fake = draw_samples(model, draw, settings.n, generator, name=f"run {name}")
        with watch.stage("sample metrics"):
            with watch.timed("fake features"):
                feats, logits = ctx.net.features_and_logits(fake)
            scores = score_samples(
                reference,
                fake,
                feats,
                logits,
                seed=seed,
                bootstrap=settings.bootstrap,
                what=f"run {name}'s samples",
                timed=watch.timed,
            )
        with watch.stage("smoothness"):
            smoothness = interpolation_smoothness(
                model,
                ctx.net,
                ends,
                pairs=SMOOTHNESS_PAIRS,
                generator=torch.Generator().manual_seed(seed),  # its own: the same paths whatever the sampler drew
                bootstrap=settings.bootstrap,
                seed=seed,
            )
        if settings.bootstrap:
            smoothness, scores["smoothness_ci_low"], scores["smoothness_ci_high"] = smoothness
        scores["smoothness"] = smoothness if math.isfinite(smoothness) else None
        per_seed.append(scores)
    if any(s["smoothness"] is None for s in per_seed):
        ctx.warnings.append("smoothness is undefined: the interpolations' end points decode to the same image")
    row.update(combine_seeds(per_seed))


def combine_seeds(per_seed: list[dict]) -> dict:
    """One seed: its values. Several: the mean, plus ``<metric>_std`` (population std over seeds) for each
    metric; intervals and the FID curve are averaged (the interval of one seed's estimate)."""
    if len(per_seed) == 1:
        return per_seed[0]
    combined = {}
    for name, value in per_seed[0].items():
        values = [s.get(name) for s in per_seed]
        if isinstance(value, (int, float)) and all(isinstance(v, (int, float)) for v in values):
            tensor = torch.tensor(values, dtype=torch.float64)
            combined[name] = tensor.mean().item()
            if not name.endswith(("_ci_low", "_ci_high", "_subset_size")):
                combined[f"{name}_std"] = tensor.std(unbiased=False).item()
    histograms = [s["class_histogram"] for s in per_seed if "class_histogram" in s]
    if histograms:
        combined["class_histogram"] = [round(v, 5) for v in torch.tensor(histograms).mean(0).tolist()]
    curves = [s["fid_curve"] for s in per_seed if s.get("fid_curve")]
    if curves:
        combined["fid_curve"] = [_mean_point(points) for points in zip(*curves)]
    return combined


def _mean_point(points) -> dict:
    out = {}
    for key in points[0]:
        values = [p[key] for p in points]
        out[key] = None if None in values else sum(values) / len(values)
    return out


@dataclass(frozen=True)
class Stage:
    """Metrics that need some capabilities (names of ``generators.base.Capabilities`` attributes)."""

    name: str
    needs: tuple[str, ...]
    run: Callable[[Context, object], dict]

    def applies_to(self, capabilities) -> bool:
        return all(bool(getattr(capabilities, need)) for need in self.needs)


def _test_subset(ctx: Context, model, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A fixed subset of the test split and, for a class-conditional model, the images' own classes."""
    test = ctx.data.test
    index = subset(len(test), size)
    labels = test.labels[index] if model.capabilities.conditional and test.labels is not None else None
    return test.images[index].float() / 255, labels


def _reconstruction(ctx: Context, model) -> dict:
    """Test images through encode-decode when the model has an encoder, else through latent inversion (a
    class-conditional model is told each image's class)."""
    if model.capabilities.encoder:
        images, labels = _test_subset(ctx, model, RECON_IMAGES)
        recon, method = encode_decode(model, images, labels=labels), "encode-decode"
    else:
        images, labels = _test_subset(ctx, model, INVERSION_IMAGES)
        generator = torch.Generator().manual_seed(ctx.settings.seeds[0])
        steps = ctx.settings.inversion_steps
        recon = invert(
            model, images, steps=steps, restarts=INVERSION_RESTARTS, lr=INVERSION_LR, generator=generator, labels=labels
        )
        recon, method = recon[1].cpu(), inversion_method(INVERSION_RESTARTS, steps)
    check_finite(recon, f"the reconstructions of run {ctx.run_dir.name}")
    scores = reconstruction_scores(recon, images, bootstrap=ctx.settings.bootstrap, seed=ctx.settings.seeds[0])
    return {**scores, "recon_method": method, "recon_n": len(images)}


def _likelihood(ctx: Context, model) -> dict:
    """ELBO and IWAE bounds on a fixed test subset, KL per latent dimension and active units."""
    k = ctx.settings.iwae_k
    images, labels = _test_subset(ctx, model, LIKELIHOOD_IMAGES)
    generator = torch.Generator().manual_seed(ctx.settings.seeds[0])
    bounds = likelihood_bounds(model, images, k, generator=generator, labels=labels)
    values = torch.tensor([bounds["elbo_nats"], bounds["iwae_nats"]])
    check_finite(values, f"the likelihood bounds of run {ctx.run_dir.name} (its decoder overflows)")
    usage_images, usage_labels = _test_subset(ctx, model, RECON_IMAGES)
    usage = latent_usage(model, usage_images, labels=usage_labels)
    return {**bounds, **usage, "iwae_k": k, "likelihood_n": len(images)}


def _anomaly(ctx: Context, model) -> dict:
    """ROC AUC of the model's anomaly score (negative ELBO, reconstruction error or −D) for odd inputs made from
    test images (noise, inverted, shuffled) against the test images themselves."""
    images = anomaly_test_images(ctx.data.test)
    return anomaly_detection(model, images, seed=ctx.settings.seeds[0], bootstrap=ctx.settings.bootstrap)


def _conditional(ctx: Context, model) -> dict:
    """Label accuracy, Classification Accuracy Score and intra-class FID of a class-conditional model."""
    from .conditional import conditional_scores

    if ctx.net.num_classes is None:
        ctx.warnings.append(f"conditional metrics need the classifier extractor; {ctx.net.id} has no classes")
        return {}
    draw = latent_sampler(model, ctx.settings.sampler, ctx.run_dir)
    scores = conditional_scores(
        model, ctx.data, ctx.net, draw, n=ctx.settings.n, seed=ctx.settings.seeds[0], cache_dir=ctx.settings.cache_dir
    )
    scores.pop("n_fake", None)
    return scores


def _disentanglement(ctx: Context, model) -> dict:
    """MIG, DCI, FactorVAE score and SAP of the model's codes, for a data set with known factors (sprites): the
    encoder's codes (a VAE's posterior mean), or those of an encoder fitted to (G(z), z) for a model without one."""
    data = ctx.data
    if getattr(data, "factors", None) is None or data.test.factors is None:  # not applicable: every key None
        return {f"{key}{part}": None for key in DISENTANGLEMENT_KEYS for part in ("", "_ci_low", "_ci_high")}
    available = len(data.test) + len(data.train)
    if available < ctx.settings.n:
        ctx.warnings.append(f"disentanglement metrics use all {available} images of {data.name}, fewer than n")
    return disentanglement_scores(
        model, data, n=ctx.settings.n, seed=ctx.settings.seeds[0], bootstrap=ctx.settings.bootstrap
    )


CAPABILITY_STAGES = (
    Stage("reconstruction", (), _reconstruction),
    Stage("likelihood", ("posterior",), _likelihood),
    Stage("anomaly detection", (), _anomaly),
    Stage("conditional metrics", ("conditional",), _conditional),
    Stage("disentanglement", (), _disentanglement),  # applies when the dataset has known factors
)


def _finish(ctx: Context, key: str, row: dict, started: float, progress: Progress | None) -> dict:
    settings = ctx.settings
    row.update(held_out_share(row, ctx.info))  # runs trained without some classes: do they draw them anyway?
    row["warnings"] = ctx.warnings
    row["protocol"] = make_protocol(
        row, ctx.info, iwae_k=settings.iwae_k, inversion_steps=settings.inversion_steps, bootstrap=settings.bootstrap
    )
    row["seconds"] = round(time.perf_counter() - started, 2)
    row["evaluated"] = datetime.now(UTC).isoformat(timespec="seconds")
    row = store_row(ctx.run_dir, key, row)
    if progress:
        progress(1.0, "done")
    return row
