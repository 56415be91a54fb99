"""Data augmentation as an experiment: do generated images help a classifier trained on few real ones?

    python -m evaluation augment RUN_DIR… [--real-per-class 10 50 100] [--seeds 0 1 2] [--generated-per-class M]
                                [--json FILE] [--force] [--no-cache]

For each k and classifier seed, the project's classifier recipe (``features.train_classifier``, through
``conditional.classification_accuracy_score``: the recipe CAS uses) is trained on k real images per class (a
seeded, class-stratified subset of the train split) and on the same k plus m generated images per class, and both
are scored on the held-out test split. Both trainings take the same number of gradient steps (``STEPS``), so the
generated images change what the classifier sees, not how long it learns; the net is the recipe's at a small width.
The seed picks the real subset, the generated images and the classifier's initialisation and batches, so the
real-only and the augmented classifier of one seed are a pair: the gain is their difference, per seed.
Intervals: the mean ± Student's t (95 %) over the seeds (n − 1 degrees of freedom); one seed gives no interval.

Only class-conditional runs are measured: their images come with the labels they were drawn for. An unconditional
run is refused — labelling its samples with the evaluation's classifier would hand the augmented classifier the
knowledge of a classifier trained on the whole labelled train split, which is exactly what the experiment withholds.
A conditional generator passes on what its own training labels taught it, too: trained on the whole split, it
tests whether a generator that saw more labelled data helps a classifier that sees only k per class — not whether
k images alone can be augmented. For that, train the generator on k per class as well (``--train-size``);
``generator_note`` says which case a run is.

Results are stored in the run's ``augmentation.json``, one entry per (k, m, seed, recipe), tied to the weights that
made them; a rerun with the same settings reads them back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from generators.checkpoints import atomic_write_bytes
from generators.errors import OneLineParser, UserError, run_command
from generators.limits import int_in, printable, seed_int

from .store import ResultsFile

RESULTS_FILE = "augmentation.json"
DEFAULT_REAL_PER_CLASS = (10, 50, 100)
DEFAULT_SEEDS = (0, 1, 2)
STEPS = 200  # gradient steps of every classifier, real-only or augmented (batches of 128)
WIDTH = 16  # channels of the recipe's first convolution (the extractor uses 48): seconds per classifier on a CPU
SAMPLER = "prior"
RECIPE_BATCH = 128  # features.train_classifier's batch size: epochs are counted in these
VERSION = 1  # bump when the experiment changes: older entries are then recomputed
MAX_PER_CLASS = 10_000  # generated images per class are held in memory: 10 classes of 28x28 at most ~300 MB
MAX_SEEDS = 100
MAX_FILE_BYTES = 4 * 2**20
INTERVAL_METHOD = "Student's t over classifier seeds"
ENTRY_NUMBERS = ("k", "generated_per_class", "seed", "steps", "width", "real_accuracy", "augmented_accuracy")

# (images per class, seed) -> (float images in [0, 1], int64 labels): what a generator adds to the training set
Generate = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]
Progress = Callable[[float, str], None]


def stratified_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` images of every class, drawn without replacement by ``seed`` (sorted by class)."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()
        if len(members) < per_class:
            raise UserError(
                f"--real-per-class {per_class} is more than class {cls} has in the train split ({len(members)})"
            )
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks)


def test_accuracy(images: torch.Tensor, labels: torch.Tensor, data, seed: int, steps: int, width: int) -> float:
    """Test-split accuracy of the recipe trained for about ``steps`` batches on ``images`` (float, [0, 1])."""
    from .conditional import classification_accuracy_score

    epochs = max(1, round(steps / math.ceil(len(images) / RECIPE_BATCH)))
    test = data.test
    return classification_accuracy_score(
        images, labels, test.images, test.labels, data.num_classes, epochs=epochs, width=width, seed=seed
    )


def measure(
    data,
    generate: Generate,
    pairs: list[tuple[int, int]],
    *,
    generated_per_class: int,
    steps: int = STEPS,
    width: int = WIDTH,
    baseline: dict | None = None,
) -> list[dict]:
    """One entry per (k, seed) in ``pairs``: the test accuracy of the real-only and of the augmented classifier.
    ``baseline`` keeps real-only accuracies across calls (they do not depend on the generator)."""
    baseline = {} if baseline is None else baseline
    train, entries = data.train, []
    for k, seed in pairs:
        idx = stratified_subset(train.labels, k, seed)
        real_images, real_labels = train.images[idx].float() / 255, train.labels[idx]
        key = (data.name, len(train), k, seed, steps, width)
        if key not in baseline:
            baseline[key] = test_accuracy(real_images, real_labels, data, seed, steps, width)
        fake_images, fake_labels = generate(generated_per_class, seed)
        images, labels = torch.cat([real_images, fake_images.float()]), torch.cat([real_labels, fake_labels])
        entries.append(
            {
                "k": k,
                "generated_per_class": generated_per_class,
                "seed": seed,
                "steps": steps,
                "width": width,
                "real_accuracy": baseline[key],
                "augmented_accuracy": test_accuracy(images, labels, data, seed, steps, width),
            }
        )
    return entries


def t_interval(values: list[float], lower: float = -math.inf, upper: float = math.inf):
    """(mean, low, high): the mean and its 95 % Student's t interval, kept inside [``lower``, ``upper``] (an
    accuracy never exceeds 1); (mean, None, None) from one value."""
    from scipy import stats

    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None, None
    spread = float(stats.t.ppf(0.975, len(values) - 1)) * torch.tensor(values, dtype=torch.float64).std().item()
    spread /= math.sqrt(len(values))
    return mean, max(mean - spread, lower), min(mean + spread, upper)


def summarise(entries: list[dict]) -> list[dict]:
    """One row per (k, m, recipe): real-only and augmented accuracy and the paired gain, each with its interval."""
    groups: dict[tuple, list[dict]] = {}
    for entry in entries:
        groups.setdefault((entry["k"], entry["generated_per_class"], entry["steps"], entry["width"]), []).append(entry)
    rows = []
    for (k, m, steps, width), group in sorted(groups.items()):
        group.sort(key=lambda e: e["seed"])
        row = {"k": k, "generated_per_class": m, "steps": steps, "width": width, "seeds": [e["seed"] for e in group]}
        real = [e["real_accuracy"] for e in group]
        augmented = [e["augmented_accuracy"] for e in group]
        for name, values, lower in (
            ("real", real, 0.0),
            ("augmented", augmented, 0.0),
            ("gain", [a - r for a, r in zip(augmented, real)], -1.0),
        ):
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = t_interval(values, lower, 1.0)
            row[f"{name}_per_seed"] = values
        row["interval"] = INTERVAL_METHOD
        rows.append(row)
    return rows


# --- a run's generated images and its stored results --------------------------------------------------------------


def conditional_generator(run) -> Generate:
    """The run's images drawn for m images of every class (latents from its prior), seeded; an unconditional run
    is refused (see the module's doc)."""
    from generators.samplers import latent_sampler

    from .conditional import draw_conditional

    classes = run.capabilities.num_classes
    if classes is None:
        raise UserError(
            f"{printable(str(run.run_dir))} is not class-conditional: its samples have no labels, and labelling them "
            "with the evaluation's classifier would leak the whole labelled train split; use a conditional run"
        )
    model = run.model()
    draw = latent_sampler(model, SAMPLER, run.run_dir)

    def generate(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(classes).repeat_interleave(per_class)
        return draw_conditional(model, draw, labels, torch.Generator().manual_seed(seed)), labels

    return generate


def entry_key(entry: dict) -> str:
    return (
        f"k={entry['k']}|m={entry['generated_per_class']}|seed={entry['seed']}|steps={entry['steps']}"
        f"|width={entry['width']}|sampler={SAMPLER}|version={VERSION}"
    )


def _valid_entry(entry: dict) -> bool:
    return all(
        isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool) for key in ENTRY_NUMBERS
    )


RESULTS = ResultsFile(
    RESULTS_FILE, entry_key, _valid_entry, {"format": VERSION, "interval": INTERVAL_METHOD}, MAX_FILE_BYTES
)


def stored_entries(run_dir, weights_sha256: str | None = None) -> dict[str, dict]:
    """The usable entries of the run's augmentation.json by key (see ``store.ResultsFile``)."""
    return RESULTS.read(run_dir, weights_sha256)


def store_entries(run_dir, entries: list[dict], weights_sha256: str) -> None:
    """Add ``entries`` to the run's augmentation.json (atomically), beside the entries of other settings."""
    RESULTS.add(run_dir, entries, weights_sha256)


def default_generated_per_class(data) -> int:
    """As many generated images as the real train split holds, in equal shares per class."""
    return len(data.train) // data.num_classes


def check_run(run, real_per_class) -> None:
    """Refuse, before any classifier is trained, an unconditional run or a k larger than a class of its data."""
    conditional_generator(run)
    stratified_subset(run.dataset().train.labels, max(real_per_class), 0)


def augment_run(
    run,
    *,
    real_per_class=DEFAULT_REAL_PER_CLASS,
    seeds=DEFAULT_SEEDS,
    generated_per_class: int | None = None,
    use_cache: bool = True,
    baseline: dict | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """The summary rows of one conditional run (see ``summarise``), from its stored entries where they exist; the
    missing (k, seed) pairs are measured and stored."""
    from .store import weights_sha256

    check_run(run, real_per_class)
    generate = conditional_generator(run)
    data = run.dataset()
    m = generated_per_class or default_generated_per_class(data)
    sha = weights_sha256(run.run_dir)
    wanted = [
        {"k": k, "generated_per_class": m, "seed": seed, "steps": STEPS, "width": WIDTH}
        for k in real_per_class
        for seed in seeds
    ]
    stored = stored_entries(run.run_dir, sha) if use_cache else {}
    missing = [(entry["k"], entry["seed"]) for entry in wanted if entry_key(entry) not in stored]
    new = []
    for done, (k, seed) in enumerate(missing):  # stored one by one: an interrupted command keeps what it measured
        if progress:
            progress(done / len(missing), f"k = {k} real images per class, seed {seed}")
        new += measure(data, generate, [(k, seed)], generated_per_class=m, steps=STEPS, width=WIDTH, baseline=baseline)
        store_entries(run.run_dir, new[-1:], sha)
    found = {**stored, **{entry_key(entry): entry for entry in new}}
    return summarise([found[entry_key(entry)] for entry in wanted])


def stored_results(run) -> list[dict]:
    """The summary rows of every stored entry of the run (all settings), for the dashboard and the findings."""
    return summarise(list(stored_entries(run.run_dir).values()))


def stored_by_run(runs) -> dict[str, list[dict]]:
    """The stored summary rows of each conditional run that has some, by run name (the figure's input)."""
    conditional = (run for run in runs if run.capabilities.conditional)
    return {run.name: rows for run in conditional if (rows := stored_results(run))}


# --- the figure and the table ---------------------------------------------------------------------------------


def _error_bars(rows: list[dict], name: str) -> dict | None:
    if any(row[f"{name}_ci_low"] is None for row in rows):
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": [row[f"{name}_ci_high"] - row[name] for row in rows],
        "arrayminus": [row[name] - row[f"{name}_ci_low"] for row in rows],
    }


def augmentation_figure(results: dict[str, list[dict]]):
    """Test accuracy against k (log axis): real-only (dashed, once per recipe) and real + generated, one line per
    run and m, with the 95 % intervals over classifier seeds as error bars; None without results."""
    import plotly.graph_objects as go

    from .figures import styled

    figure, drawn_real = go.Figure(), set()
    for run, rows in results.items():
        for m in sorted({row["generated_per_class"] for row in rows}):
            line = sorted((row for row in rows if row["generated_per_class"] == m), key=lambda row: row["k"])
            ks = [row["k"] for row in line]
            real_key = tuple((row["k"], tuple(row["real_per_seed"])) for row in line)
            if real_key not in drawn_real:  # every conditional run of one data set shares the real-only classifiers
                drawn_real.add(real_key)
                real_name = "real only" if len(drawn_real) == 1 else f"real only ({run})"
                figure.add_trace(
                    go.Scatter(
                        x=ks,
                        y=[row["real"] for row in line],
                        error_y=_error_bars(line, "real"),
                        name=real_name,
                        mode="lines+markers",
                        line={"dash": "dash", "color": "black"},
                    )
                )
            figure.add_trace(
                go.Scatter(
                    x=ks,
                    y=[row["augmented"] for row in line],
                    error_y=_error_bars(line, "augmented"),
                    name=f"real + {m} generated per class ({run})",
                    mode="lines+markers",
                )
            )
    if not figure.data:
        return None
    figure.update_layout(
        title="Test accuracy of a classifier trained on k real images per class, with and without generated ones",
        xaxis={
            "type": "log",
            "title": "real training images per class, k (log scale)",
            "tickvals": sorted({k for trace in figure.data for k in trace.x}),
        },
        yaxis={"title": "test accuracy (95 % t-interval over seeds)"},
        height=450,
        legend={"orientation": "h", "y": -0.25},
        margin={"b": 120},
    )
    return styled(figure)


def _with_interval(row: dict, name: str, signed: bool = False) -> str:
    number = "{:+.3f}" if signed else "{:.3f}"
    text = number.format(row[name])
    if row[f"{name}_ci_low"] is None:
        return text + " [one seed: no interval]"
    return f"{text} [{number.format(row[f'{name}_ci_low'])}, {number.format(row[f'{name}_ci_high'])}]"


def table(results: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per run and k, with readable column names (the terminal's table and the dashboard's)."""
    return pd.DataFrame(
        [
            {
                "run": run,
                "real images per class (k)": row["k"],
                "generated per class": row["generated_per_class"],
                "accuracy: real only": _with_interval(row, "real"),
                "accuracy: real + generated": _with_interval(row, "augmented"),
                "gain": _with_interval(row, "gain", signed=True),
                "classifier seeds": ", ".join(str(seed) for seed in row["seeds"]),
            }
            for run, rows in results.items()
            for row in rows
        ]
    )


TABLE_NOTE = (
    "Test accuracy on the held-out test split, mean [95 % interval, " + INTERVAL_METHOD + "]; gain = real + "
    "generated − real only, paired by seed"
)


def to_text(results: dict[str, list[dict]]) -> str:
    """The results as a table for a terminal, one line per run and k."""
    return TABLE_NOTE + "\n" + table(results).to_string(index=False)


# --- the command line ---------------------------------------------------------------------------------------------


def build_parser(prog: str = "python -m evaluation augment") -> OneLineParser:
    parser = OneLineParser(
        prog=prog,
        description="do generated images help a classifier trained on few real ones? (conditional runs)",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="class-conditional run folders")
    parser.add_argument(
        "--real-per-class",
        type=int_in(1, MAX_PER_CLASS),
        nargs="+",
        default=list(DEFAULT_REAL_PER_CLASS),
        metavar="K",
        help="real training images per class (default 10 50 100)",
    )
    parser.add_argument(
        "--seeds", type=seed_int, nargs="+", default=list(DEFAULT_SEEDS), help="classifier seeds (default 0 1 2)"
    )
    parser.add_argument(
        "--generated-per-class",
        type=int_in(1, MAX_PER_CLASS),
        metavar="M",
        help="generated images per class (default: the train split's size / classes)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--no-cache", action="store_true", help="recompute even if augmentation.json has them")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --json file even when it is not JSON (never a run's own files)",
    )
    return parser


def _augment(args) -> int:
    from tqdm import tqdm

    from generators.outputs import Output, check_outputs

    from .runs import load_runs

    outputs = check_outputs([Output("--json", Path(args.json), "json")], force=args.force) if args.json else []
    if len(args.seeds) > MAX_SEEDS:
        raise UserError(f"--seeds takes at most {MAX_SEEDS} seeds, got {len(args.seeds)}")
    real_per_class, seeds = list(dict.fromkeys(args.real_per_class)), list(dict.fromkeys(args.seeds))
    runs = load_runs(args.run_dirs)
    for run in runs:  # refuse a bad run before minutes are spent on the others
        check_run(run, real_per_class)
    baseline, results = {}, {}
    # disable=None: a bar on a terminal only, so piped or captured stderr holds nothing but errors
    with tqdm(total=len(runs), unit="run", disable=None, bar_format="{l_bar}{bar}| {n:.2f}/{total} [{elapsed}]") as bar:
        for i, run in enumerate(runs):

            def progress(fraction: float, message: str, i=i, run=run) -> None:
                bar.n = i + fraction
                bar.set_description(f"{run.name}: {message}", refresh=False)
                bar.refresh()

            results[run.name] = augment_run(
                run,
                real_per_class=real_per_class,
                seeds=seeds,
                generated_per_class=args.generated_per_class,
                use_cache=not args.no_cache,
                baseline=baseline,
                progress=progress,
            )
        bar.n = len(runs)
    print(to_text(results))
    for path in outputs:
        atomic_write_bytes(path, json.dumps(results, indent=1).encode())
        print(f"wrote json to {printable(str(path))}")
    return 0


def augment_main(argv: list[str], prog: str = "python -m evaluation augment") -> int:
    return run_command(lambda: _augment(build_parser(prog).parse_args(argv)))


def generator_note(runs) -> str:
    """What the runs' generators were trained on, and so what their gain can show (see the module's docstring)."""
    by_data: dict[str, list[str]] = {}
    for run in runs:
        size = run.info["train_config"].get("train_size")
        data = f"{size} labelled training images" if size else "the whole labelled training split"
        by_data.setdefault(data, []).append(run.name)
    seen = "; ".join(f"{', '.join(names)}: {data}" for data, names in by_data.items())
    return (
        f"Caveat — the generators were trained on ({seen}), so their images carry what those labels taught them: a "
        "gain shows that a generator trained on more labelled data helps a classifier that sees only k per class, "
        "not that k images alone can be augmented (train the generator with --train-size k × classes for that)"
    )
