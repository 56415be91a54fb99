"""Command line: python -m evaluation RUN_DIR [RUN_DIR ...] -> a table on the terminal and in files.

Bad input (a missing or corrupt run, n <= 0, an output file in a missing folder, Inception offline) gives
one line on stderr and exit code 2.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from generators.cli import OneLineParser, positive_int
from generators.errors import UserError, run_command
from generators.samplers import SAMPLERS

from .runner import INVERSION_STEPS

FORMATS = ("json", "markdown", "latex", "csv")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m evaluation", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders to score")
    parser.add_argument("--n", type=positive_int, default=5000, help="samples per seed (and real images)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="sampling seed (default 0)")
    seeds.add_argument("--seeds", type=int, nargs="+", help="several seeds: report mean ± std")
    parser.add_argument("--sampler", choices=SAMPLERS, default="prior")
    parser.add_argument("--extractor", choices=("classifier", "inception"), default="classifier")
    parser.add_argument("--iwae-k", type=positive_int, default=100, help="importance samples of the IWAE bound")
    parser.add_argument(
        "--inversion-steps", type=positive_int, default=INVERSION_STEPS, help="Adam steps of the GAN's latent inversion"
    )
    parser.add_argument("--extractor-dir", default="checkpoints/_extractors", help="where extractors are cached")
    parser.add_argument("--no-cache", action="store_true", help="recompute even if metrics.json has the row")
    for fmt in FORMATS:
        parser.add_argument(f"--{fmt}", metavar="FILE", help=f"also write the table as {fmt}")
    return parser


def _check_outputs(args) -> dict[str, Path]:
    outputs = {fmt: Path(getattr(args, fmt)) for fmt in FORMATS if getattr(args, fmt)}
    for fmt, path in outputs.items():
        if not path.parent.is_dir():
            raise UserError(f"the folder of --{fmt} ({path.parent}) does not exist")
        if path.is_dir():
            raise UserError(f"--{fmt} {path} is a folder; give a file name")
    return outputs


def main(argv: list[str] | None = None) -> int:
    return run_command(lambda: _evaluate(build_parser().parse_args(argv)))


def _evaluate(args) -> int:
    outputs = _check_outputs(args)
    from tqdm import tqdm

    from . import report
    from .runner import check_inputs, evaluate_run

    for run_dir in args.run_dirs:  # fail on a bad run before spending minutes on the good ones
        check_inputs(run_dir, sampler=args.sampler, extractor=args.extractor)
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

            rows.append(
                evaluate_run(
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
                )
            )
        bar.n = len(args.run_dirs)
        bar.set_description("done")
    print(report.to_text(rows, width=shutil.get_terminal_size((160, 24)).columns))
    writers = {"json": report.to_json, "markdown": report.to_markdown, "latex": report.to_latex, "csv": report.to_csv}
    for fmt, path in outputs.items():
        path.write_text(writers[fmt](rows))
        print(f"wrote {fmt} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
