"""The findings and the report from run folders, for the command line and the Python API:

    python -m evaluation findings RUN_DIR… [--json | --markdown]   the textbook claims tested on the runs
    python -m evaluation report RUN_DIR… --out report.zip [--seed S] [--samples N] [--force]

Both compare the runs' stored metric rows (``evaluation.rows.comparison_rows``: one prior-sampler row per run, all
at one n; compute them with ``python -m evaluation RUN_DIR… --n N``). ``report`` writes the zip the dashboard's
*Build the report zip* button builds (``evaluation.bundle.build_zip``), with the dashboard's defaults (seed 0, 64
samples per grid); the β sweep, the feature extractors (``_extractors``) and the sanity panel (``_sanity``) are
read from the folder holding the first run, as the dashboard reads them from its checkpoints folder.

Bad input (a missing or unreadable run, an output that would replace a run's file or a file of another kind
without --force) is one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from generators.checkpoints import atomic_write_bytes
from generators.errors import OneLineParser, run_command
from generators.limits import int_in, printable, seed_int
from generators.outputs import Output, check_outputs

from . import findings as findings_module
from .bundle import DEFAULT_SAMPLES, DEFAULT_SEED
from .runs import Run, load_runs

MAX_GRID_SAMPLES = 1024
FINDINGS_FORMATS = ("text", "json", "markdown")


def build_findings_parser(prog: str = "python -m evaluation findings") -> OneLineParser:
    parser = OneLineParser(
        prog=prog,
        description="the textbook VAE-vs-GAN claims tested on the runs' stored metrics (one shared n)",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders to compare")
    style = parser.add_mutually_exclusive_group()
    style.add_argument("--json", action="store_true", help="print JSON (runs, then each claim, verdict, evidence)")
    style.add_argument("--markdown", action="store_true", help="print Markdown (the report zip's findings.md)")
    return parser


def build_report_parser(prog: str = "python -m evaluation report") -> OneLineParser:
    parser = OneLineParser(
        prog=prog,
        description="the report zip of the runs: figures, tables, methods, findings (the dashboard's button)",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders to compare")
    parser.add_argument("--out", required=True, metavar="FILE.zip", help="where to write the zip")
    parser.add_argument(
        "--seed",
        type=seed_int,
        default=DEFAULT_SEED,
        help=f"seed of the sample grids and figures (default {DEFAULT_SEED}, as in the dashboard)",
    )
    parser.add_argument(
        "--samples",
        type=int_in(1, MAX_GRID_SAMPLES),
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"samples per grid (default {DEFAULT_SAMPLES}, as in the dashboard)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out file even when it is not a zip (never a run's own files)",
    )
    return parser


def tested_claims(runs: list[Run]) -> list[findings_module.Finding]:
    """Every claim tested on the runs' comparable stored rows."""
    from .rows import comparison_rows

    return findings_module.assess(runs, comparison_rows(runs))


def check_report_path(path, force: bool = False) -> Path:
    """``path`` may receive the report zip (``generators.outputs``): never a run's file, never a file that is not
    a zip without ``force``, never into a missing folder."""
    (checked,) = check_outputs([Output("--out", Path(path), "zip")], force=force)
    return checked


def write_report(
    runs: list[Run],
    path,
    *,
    seed: int = DEFAULT_SEED,
    samples: int = DEFAULT_SAMPLES,
    force: bool = False,
    progress=None,
):
    """Check ``path``, build the report zip of ``runs`` and write it atomically; returns the path."""
    from .bundle import build_zip, report_inputs

    path = check_report_path(path, force)
    atomic_write_bytes(path, build_zip(report_inputs(runs, seed=seed, n_samples=samples), progress))
    return path


def _findings(args) -> int:
    runs = load_runs(args.run_dirs)
    found = tested_claims(runs)
    if args.json:
        print(findings_module.to_json(found, runs))
    elif args.markdown:
        print(findings_module.to_markdown(found, runs), end="")
    else:
        print(findings_module.to_text(found, runs), end="")
    return 0


def _report(args) -> int:
    check_report_path(args.out, args.force)  # before the runs are read and the figures drawn
    runs = load_runs(args.run_dirs)
    from .rows import comparison_n

    if comparison_n(runs) is None:
        print(
            "warning: the runs have no metrics at one shared n, so the zip has no metric tables or charts and the "
            "claims are not measured yet; compute them first with python -m evaluation RUN_DIR… --n N",
            file=sys.stderr,
        )
    path = write_report(runs, args.out, seed=args.seed, samples=args.samples, force=args.force)
    print(f"wrote the report to {printable(str(path))}")
    return 0


def findings_main(argv: list[str], prog: str = "python -m evaluation findings") -> int:
    return run_command(lambda: _findings(build_findings_parser(prog).parse_args(argv)))


def report_main(argv: list[str], prog: str = "python -m evaluation report") -> int:
    return run_command(lambda: _report(build_report_parser(prog).parse_args(argv)))
