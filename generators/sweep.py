"""``python -m generators sweep MODEL --set KEY=V1,V2,… [--set …] --seeds S… [train options]``: one run per point
of the grid and training seed, named so they group (``vae-sweep-train_size500-beta4-seed0``), trained one after
the other by the same code as ``train``. The whole grid is parsed by the real ``train`` parser and checked before
the first run trains. Re-running the command resumes: a finished point is skipped, an unfinished one resumed."""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .limits import printable

# train settings a sweep may vary besides the model's own options (what a run learns from, and for how long)
SWEPT_TRAIN_SETTINGS = ("train_size", "steps", "epochs", "minutes", "batch_size")
# the sweep sets these itself for every point
OWN_FLAGS = ("--seed", "--seeds", "--run", "--run-name", "--out-dir", "--resume", "--overwrite", "--progress-json")
MAX_POINTS = 200
# what a run found at a point's folder must share with the point to be skipped or resumed
RECIPE_TRAIN_FIELDS = (
    "dataset",
    "image_size",
    "channels",
    "batch_size",
    "seed",
    "train_size",
    "exclude_classes",
    "lr_schedule",
)


@dataclass(frozen=True)
class Point:
    """One run of the sweep: its settings (key -> the value as typed), its training seed, its parsed arguments."""

    settings: tuple[tuple[str, str], ...]
    seed: int
    args: argparse.Namespace
    run_dir: Path


def add_sweep_parser(sub, seed_type, max_seeds: int) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="train a grid of runs over any setting (β, latent size, training-set size, steps) and seeds",
        description="Train one run per point of the grid of --set values and per training seed, named so they group "
        "(MODEL-sweep-train_size500-beta4-seed0), one after the other by the same code as train. Every point is "
        "parsed by the train parser and checked before the first run trains. Re-run the same command to resume: "
        "finished points are skipped, unfinished ones resumed. Any other option is a train option (see train "
        "--help), the same for every point.",
    )
    sweep.add_argument("model")
    sweep.add_argument(
        "--set",
        dest="settings",
        action="append",
        required=True,
        metavar="KEY=V1,V2,…",
        help="a swept setting and its values, e.g. train_size=500,1000,2000 or beta=0.5,1,4 (repeat for a grid)",
    )
    sweep.add_argument("--seeds", type=seed_type, nargs="+", default=[0], metavar="SEED", help="training seeds")
    sweep.add_argument("--out-root", default="checkpoints", help="the folder the runs are made in")
    sweep.add_argument("--run", dest="stem", help="the runs' common name start (default MODEL-sweep)")
    sweep.set_defaults(max_seeds=max_seeds)


def parse_settings(texts: list[str], model_options) -> list[tuple[str, list[str]]]:
    """``["beta=0.5,1", "train_size=500"]`` -> ``[("beta", ["0.5", "1"]), ("train_size", ["500"])]``;
    ``model_options``: the model options the command line offers."""
    known, parsed = (*model_options, *SWEPT_TRAIN_SETTINGS), []
    for text in texts:
        key, sep, values = text.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise UserError(
                f"--set {printable(text)[:60]}: unknown setting {printable(key)[:40]!r}; give KEY=V1,V2,… with KEY "
                f"one of {', '.join(known)}"
            )
        if key in {k for k, _ in parsed}:
            raise UserError(f"--set {key} is given twice: put all its values in one --set {key}=V1,V2,…")
        items = [v.strip() for v in values.split(",")]
        if not all(items):
            raise UserError(f"--set {printable(text)[:60]}: give values separated by commas")
        parsed.append((key, items))
    return parsed


def run_name(stem: str, settings, seed: int) -> str:
    return "-".join([stem, *(f"{key}{value}" for key, value in settings), f"seed{seed}"])


def grid(args, train_options: list[str], cli) -> list[Point]:
    """Every point of the sweep, each parsed by the ``train`` parser and checked as ``train`` checks it (``cli``:
    the command-line module, ``generators.__main__``)."""
    given = [option.split("=", 1)[0] for option in train_options if option.startswith("--")]
    settings = parse_settings(args.settings, cli.model_option_fields())
    for flag in given:
        if flag in OWN_FLAGS or flag[2:].replace("-", "_") in {key for key, _ in settings}:
            raise UserError(f"sweep sets {flag} itself for every point (use --seeds, --out-root, --run or --set)")
    if len(set(args.seeds)) != len(args.seeds) or len(args.seeds) > args.max_seeds:
        raise UserError(f"--seeds takes up to {args.max_seeds} distinct seeds")
    combos = list(itertools.product(*[[(key, value) for value in values] for key, values in settings]))
    if len(combos) * len(args.seeds) > MAX_POINTS:
        raise UserError(f"the sweep has {len(combos) * len(args.seeds)} runs; at most {MAX_POINTS}")
    stem, points = args.stem or f"{args.model}-sweep", []
    for combo in combos:
        flags = [part for key, value in combo for part in (f"--{key.replace('_', '-')}", value)]
        for seed in args.seeds:
            name = run_name(stem, combo, seed)
            argv = ["train", args.model, *train_options, *flags, "--seed", str(seed), "--run", name]
            try:
                parsed = cli.build_parser(args.program).parse_args([*argv, "--out-dir", args.out_root])
                cli.check_classes(parsed)
                cli.train_settings(parsed, seed)
            except UserError as exc:
                where = ", ".join(f"{key}={value}" for key, value in combo)
                raise UserError(f"sweep point {where}: {str(exc).removeprefix('error: ')}") from None
            points.append(Point(combo, seed, parsed, Path(args.out_root) / name))
    check_distinct(settings, points)
    check_models(points, cli)
    return points


def check_distinct(settings: list[tuple[str, list[str]]], points: list[Point]) -> None:
    """Two values of a setting that parse to the same value (``beta=1,1.0``, ``train_size=300,300``) would train
    the same run twice: refused (not merged), naming both as typed."""
    for index, (key, values) in enumerate(settings):
        typed = {point.settings[index][1]: getattr(point.args, key) for point in points}
        for later, text in enumerate(values):
            same = next((earlier for earlier in values[:later] if typed[earlier] == typed[text]), None)
            if same is not None:
                raise UserError(
                    f"--set {key}: {printable(same)} and {printable(text)} are the same value; give each value once"
                )


def check_models(points: list[Point], cli) -> None:
    """What ``train`` checks once it has a run's data, for every point: its training subset exists
    (``--train-size`` within the split; the data loaded once per data set) and its model config, completed by the
    data's image shape and classes, is valid and not too large."""
    from .checkpoints import checked_config
    from .registry import model_class
    from .training import dataset_fields, run_data

    loaded = {}
    for point in points:
        options, cfg = cli.train_settings(point.args, point.seed)
        key = (cfg.dataset, cfg.data_dir, cfg.image_size, cfg.channels, cfg.train_size, str(cfg.exclude_classes))
        if key not in loaded:
            loaded[key] = run_data(cfg)
        try:
            checked_config(point.args.model, {**options, **dataset_fields(model_class(point.args.model), loaded[key])})
        except UserError as exc:
            where = ", ".join(f"{name}={value}" for name, value in point.settings)
            raise UserError(f"sweep point {where}: {str(exc).removeprefix('error: ')}") from None


def state_of(point: Point, cli) -> str:
    """``new``, ``finished`` (its budget reached: skipped), ``unfinished`` (resumed) or ``empty`` (a folder
    that never reached its first checkpoint: trained again). A run of another recipe under the point's name is
    refused: skipping or resuming it would put a foreign run in the sweep."""
    from .checkpoints import WEIGHTS, read_run_info
    from .train_config import budget_reached

    if not point.run_dir.exists():
        return "new"
    if not (point.run_dir / WEIGHTS).is_file():
        return "empty"
    options, cfg = cli.train_settings(point.args, point.seed)
    info = read_run_info(point.run_dir)
    check_same_recipe(point, info, options, cfg)
    return "finished" if budget_reached(info, cfg) else "unfinished"


def check_same_recipe(point: Point, info: dict, options: dict, cfg) -> None:
    """The stored run at a point's folder has the point's model, options, data and seed."""
    stored = info.get("train_config") or {}
    differs = [key for key, value in options.items() if info["model_config"].get(key, value) != value]
    differs += [key for key in RECIPE_TRAIN_FIELDS if stored.get(key) != getattr(cfg, key)]
    if info["model"] != point.args.model or differs:
        what = differs[0] if differs else "model"
        raise UserError(
            f"{printable(str(point.run_dir))} holds a run with another {what} than this sweep's point; pick another "
            "--run stem or --out-root (nothing was trained)"
        )


def run_sweep(args, train_options: list[str], cli) -> int:
    """Train every point of the grid that is not finished, one after the other; stop at the first failure."""
    points = grid(args, train_options, cli)
    states = [state_of(point, cli) for point in points]
    for index, (point, state) in enumerate(zip(points, states), 1):
        where = f"[{index}/{len(points)}] {printable(point.run_dir.name)}"
        if state == "finished":
            print(f"{where}: finished already, skipped", file=sys.stderr)
            continue
        point.args.resume, point.args.overwrite = state == "unfinished", state == "empty"
        print(f"{where}: {'resuming' if state == 'unfinished' else 'training'}", file=sys.stderr)
        code = cli.train_one(point.args, point.seed, point.run_dir)
        if code:
            return code
    print(f"sweep done: {len(points)} runs in {printable(args.out_root)} ({states.count('finished')} were finished)")
    return 0
