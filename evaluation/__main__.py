"""Command line: python -m evaluation RUN_DIR [RUN_DIR ...] -> a table on the terminal and in files.
python -m evaluation sanity [--dataset mnist5k] [--n N] [--json F] [--markdown F] -> the metric sanity panel.
python -m evaluation findings RUN_DIR... [--json | --markdown] -> the textbook claims tested on the runs.
python -m evaluation report RUN_DIR... --out report.zip -> the dashboard's report zip (see evaluation.analysis).
python -m evaluation compress RUN_DIR... [--n N] [--json F] -> bits per image against distortion, with JPEG/WebP/PNG
(see evaluation.compression).
python -m evaluation augment RUN_DIR... [--real-per-class K...] [--seeds S...] -> do generated images help a
classifier trained on few real ones? (see evaluation.augmentation).

Bad input (a missing or corrupt run, n <= 0, an output file in a missing folder, Inception offline) gives
one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

from generators.checkpoints import atomic_write_bytes
from generators.errors import OneLineParser, UserError, out_of_memory_hint, run_command
from generators.limits import MAX_SAMPLES, int_in, printable, seed_int
from generators.outputs import Output, check_outputs
from generators.registry import load_plugins
from generators.samplers import SAMPLERS

from .bootstrap import DEFAULT_B
from .inversion import INVERSION_STEPS
from .runner import EXTRACTORS

PROGRAM = "python -m evaluation"  # the name in usage and error lines; genlab passes its own (genlab evaluate)
FORMATS = ("json", "markdown", "latex", "csv")
SANITY_FORMATS = ("json", "markdown")
STDOUT = Path("-")  # an output asked for as "-" is printed, not written to a file named "-"
MAX_IWAE_K = 10_000
MAX_INVERSION_STEPS = 100_000
MAX_SEEDS = 100


def build_parser(prog: str = PROGRAM) -> OneLineParser:
    parser = OneLineParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders to score")
    parser.add_argument("--n", type=int_in(1, MAX_SAMPLES), default=5000, help="samples per seed (and real images)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_int, help="sampling seed (default 0; 0 .. 2**63-1)")
    seeds.add_argument("--seeds", type=seed_int, nargs="+", help=f"several seeds (at most {MAX_SEEDS}): mean ± std")
    parser.add_argument("--sampler", choices=SAMPLERS, default="prior")
    parser.add_argument("--extractor", choices=EXTRACTORS, default="classifier")
    parser.add_argument(
        "--iwae-k", type=int_in(1, MAX_IWAE_K), default=100, help="importance samples of the IWAE bound"
    )
    parser.add_argument(
        "--inversion-steps",
        type=int_in(1, MAX_INVERSION_STEPS),
        default=INVERSION_STEPS,
        help="Adam steps of the GAN's latent inversion",
    )
    parser.add_argument("--extractor-dir", default="checkpoints/_extractors", help="where extractors are cached")
    parser.add_argument("--no-cache", action="store_true", help="recompute even if metrics.json has the row")
    _add_bootstrap(parser)
    for fmt in FORMATS:
        parser.add_argument(f"--{fmt}", metavar="FILE", help=f"also write the table as {fmt} (- = standard output)")
    _add_force(parser)
    return parser


def _add_bootstrap(parser) -> None:
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_B,
        metavar="B",
        help=f"bootstrap resamples of the 95 %% intervals (0: none; default {DEFAULT_B})",
    )


def _add_force(parser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output file even when it is not of its kind (never a run's own files)",
    )


def build_sanity_parser(prog: str = f"{PROGRAM} sanity") -> OneLineParser:
    parser = OneLineParser(prog=prog, description="every metric on real images and corrupted copies of them")
    parser.add_argument("--dataset", default="mnist5k", help="dataset to corrupt (default mnist5k)")
    parser.add_argument("--n", type=int_in(6, MAX_SAMPLES), default=5000, help="training images in the reference")
    parser.add_argument("--extractor-dir", default="checkpoints/_extractors", help="where extractors are cached")
    _add_bootstrap(parser)
    for fmt in SANITY_FORMATS:
        parser.add_argument(f"--{fmt}", metavar="FILE", help=f"also write the panel as {fmt} (- = standard output)")
    _add_force(parser)
    return parser


def _check_outputs(args, formats=FORMATS) -> dict[str, Path]:
    """The table files to write, refused up front if one would replace a run's file, a file of another kind
    (without --force) or another output of this command (``generators.outputs``)."""
    outputs = {fmt: Path(getattr(args, fmt)) for fmt in formats if getattr(args, fmt)}
    to_stdout = [f"--{fmt}" for fmt, path in outputs.items() if path == STDOUT]
    if len(to_stdout) > 1:
        raise UserError(f"only one output can go to standard output (-), not {' and '.join(to_stdout)}")
    files = [Output(f"--{fmt}", path, fmt) for fmt, path in outputs.items() if path != STDOUT]
    check_outputs(files, force=args.force)
    return outputs


def _write_outputs(outputs: dict[str, Path], render, table: str) -> None:
    """Print the table, then write each asked format (``render(fmt)``) to its file. A format asked for as ``-``
    goes to standard output alone, so it can be piped; the table and the "wrote" lines then go to stderr."""
    to_stdout = STDOUT in outputs.values()
    say = functools.partial(print, file=sys.stderr if to_stdout else sys.stdout)
    say(table)
    for fmt, path in outputs.items():
        if path == STDOUT:
            sys.stdout.write(render(fmt))
            sys.stdout.flush()
            continue
        atomic_write_bytes(path, render(fmt).encode())  # a failed write keeps the old file, leaves no temp
        say(f"wrote {fmt} to {printable(str(path))}")


def distinct_runs(run_dirs: list[str]) -> list[str]:
    """The run folders in order, each once: the same folder given twice (also as ``r`` and ``./r``) would give two
    identical rows, so it is scored once, with a warning."""
    seen, kept = set(), []
    for run_dir in run_dirs:
        key = os.path.realpath(run_dir)
        if key in seen:
            print(f"warning: {printable(run_dir)} is given twice; it is scored once", file=sys.stderr)
            continue
        seen.add(key)
        kept.append(run_dir)
    return kept


def label_rows(rows: list[dict], run_dirs: list[str]) -> None:
    """Rows are named by their folder; two folders of the same name (a run and its copy elsewhere) are told apart
    by the path they were given as."""
    names = [row.get("run") for row in rows]
    for row, run_dir in zip(rows, run_dirs):
        if names.count(row.get("run")) > 1:
            row["run"] = str(run_dir).rstrip("/") or str(run_dir)


def parse_args(argv: list[str] | None = None, prog: str = PROGRAM):
    args = build_parser(prog).parse_args(argv)
    if args.seeds and len(args.seeds) > MAX_SEEDS:
        raise UserError(f"--seeds takes at most {MAX_SEEDS} seeds, got {len(args.seeds)}")
    return args


def evaluate_with_args(run_dir, args, seeds, progress) -> dict:
    """One run's row with the settings of parsed ``args`` (the CLI's and the Python API's one mapping)."""
    from .runner import evaluate_run  # heavy: imported when a run is scored, not for --help

    return evaluate_run(
        run_dir,
        n=args.n,
        seeds=seeds,
        sampler=args.sampler,
        extractor=args.extractor,
        iwae_k=args.iwae_k,
        inversion_steps=args.inversion_steps,
        progress=progress,
        use_cache=not args.no_cache,
        cache_dir=args.extractor_dir,
        bootstrap=args.bootstrap,
    )


def main(argv: list[str] | None = None, program: str = PROGRAM) -> int:
    """``program``: what the user typed for ``python -m evaluation`` (``genlab evaluate``; ``genlab`` before a
    subcommand: ``genlab findings``)."""
    argv = sys.argv[1:] if argv is None else argv
    command = f"{program} {argv[0]}" if argv else program
    if argv[:1] == ["sanity"]:
        return run_command(lambda: _sanity(build_sanity_parser(command).parse_args(argv[1:])))
    if argv[:1] in (["findings"], ["report"]):
        from .analysis import findings_main, report_main

        return (findings_main if argv[0] == "findings" else report_main)(argv[1:], command)
    if argv[:1] == ["compress"]:
        from .compression import main as compress_main

        return compress_main(argv[1:], command)
    if argv[:1] == ["augment"]:
        from .augmentation import augment_main

        return augment_main(argv[1:], command)
    return run_command(lambda: _evaluate(parse_args(argv, program)))


def _sanity(args) -> int:
    from generators.data import load_dataset

    from . import report
    from .runner import MAX_BOOTSTRAP, check_cache_dir
    from .sanity import sanity_panel
    from .scoring import check_splits

    outputs = _check_outputs(args, SANITY_FORMATS)
    if not 0 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise UserError(f"--bootstrap must be from 0 to {MAX_BOOTSTRAP}, got {args.bootstrap}")
    check_cache_dir(args.extractor_dir)
    data = load_dataset(args.dataset)
    check_splits(data)  # the split sizes checked as `python -m evaluation RUN` checks them
    if data.train.labels is None or not data.num_classes or data.num_classes < 2:  # sanity has no --extractor
        raise UserError(
            f"the sanity panel needs a dataset with at least two classes (one sub-folder per class); {data.name} "
            "has none"
        )
    rows = sanity_panel(args.dataset, n=args.n, bootstrap=args.bootstrap, cache_dir=args.extractor_dir)
    text = report.sanity_markdown(rows)
    _write_outputs(outputs, lambda fmt: report.to_json(rows) if fmt == "json" else text, text)
    return 0


def _evaluate(args) -> int:
    load_plugins()
    outputs = _check_outputs(args)
    from tqdm import tqdm

    from . import report
    from .runner import check_inputs
    from .runs import check_one_dataset

    args.run_dirs = distinct_runs(args.run_dirs)
    datasets = [  # fail on a bad run, or runs of two data sets, before spending minutes on the good ones
        (Path(run_dir).name, check_inputs(run_dir, sampler=args.sampler, extractor=args.extractor)["dataset"])
        for run_dir in args.run_dirs
    ]
    check_one_dataset(datasets)
    seeds = args.seeds or [args.seed if args.seed is not None else 0]
    rows = []
    # disable=None: a bar on a terminal only, so piped or captured stderr holds nothing but errors
    with tqdm(
        total=len(args.run_dirs), unit="run", disable=None, bar_format="{l_bar}{bar}| {n:.2f}/{total} [{elapsed}]"
    ) as bar:
        for i, run_dir in enumerate(args.run_dirs):

            def progress(fraction: float, message: str, base=i, name=Path(run_dir).name) -> None:
                bar.n = base + fraction
                bar.set_description(f"{name}: {message}", refresh=False)
                bar.refresh()

            with out_of_memory_hint(f"evaluating {printable(str(run_dir))}", "lower --n"):
                row = evaluate_with_args(run_dir, args, seeds, progress)
            rows.append(row)
        bar.n = len(args.run_dirs)
        bar.set_description("done")
    label_rows(rows, args.run_dirs)
    writers = {"json": report.to_json, "markdown": report.to_markdown, "latex": report.to_latex, "csv": report.to_csv}
    table = report.to_text(rows, width=shutil.get_terminal_size((160, 24)).columns)
    _write_outputs(outputs, lambda fmt: writers[fmt](rows), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
