"""The ``genlab`` command (installed by ``pip install .``): one entry point for the lab's command lines.

Each subcommand hands its arguments to the module command it names, so ``genlab train vae --steps 5`` is
``python -m generators train vae --steps 5`` and ``genlab evaluate RUN`` is ``python -m evaluation RUN``:
the same options, checks, messages and exit codes. ``genlab app`` starts the dashboard from any folder on the
runs in ``./checkpoints`` (``--out-dir`` to change). Bad input: one ``error:`` line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from generators.errors import UserError, run_command

PROG = "genlab"
DEFAULT_OUT_DIR = "checkpoints"
CHECKPOINTS_ENV = "GENLAB_CHECKPOINTS"  # read by dashboard.state.checkpoints_dir
SERVER = Path(__file__).resolve().parent / "server" / "app.py"

# subcommand -> (module whose main(argv) runs it, the argv prefix it gets, one line of help)
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "train": ("generators", ("train",), "train a model into a run folder (default ./checkpoints/<run>)"),
    "sample": ("generators", ("sample",), "draw samples from a trained run into a .npy file"),
    "list": ("generators", ("list",), "list the runs in a folder (default ./checkpoints)"),
    "sweep": ("generators", ("sweep",), "train a grid of runs over any setting and seeds"),
    "evaluate": ("evaluation", (), "score runs with one yardstick: a table on the terminal and in files"),
    "findings": ("evaluation", ("findings",), "the textbook claims tested on runs"),
    "report": ("evaluation", ("report",), "the report zip of runs (figures, tables, methods)"),
    "sanity": ("evaluation", ("sanity",), "every metric on real images and on corrupted copies of them"),
    "augment": ("evaluation", ("augment",), "do generated images help a classifier trained on few real ones?"),
    "compress": ("evaluation", ("compress",), "bits per image against distortion, beside JPEG, WebP and PNG"),
    "app": ("", (), "start the dashboard on the runs in ./checkpoints (--out-dir to change)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: {PROG} COMMAND [options]   ({PROG} COMMAND --help for a command's options)",
        "",
        "The lab's command lines in one: each command takes the options of the module command it names",
        "(genlab train = python -m generators train, genlab evaluate = python -m evaluation, ...). Runs go to",
        "./checkpoints of the current folder unless --out-dir says otherwise.",
        "",
        "commands:",
        *(f"  {name.ljust(width)}  {help_text}" for name, (_, _, help_text) in COMMANDS.items()),
        "",
        "  --version   the lab's version",
    ]
    return "\n".join(lines)


def module_main(module: str):
    """``main(argv)`` of ``python -m <module>``, imported only when its command runs (``--help`` stays quick)."""
    if module == "generators":
        from generators.__main__ import main
    else:
        from evaluation.__main__ import main
    return main


def program_name(name: str) -> str:
    """What stands for ``python -m MODULE`` in the usage and error lines of ``genlab NAME``: ``genlab`` when NAME is
    the module's own subcommand (genlab train = python -m generators train), else ``genlab NAME`` (genlab evaluate
    = python -m evaluation), so every line names the command the user typed."""
    _, prefix, _ = COMMANDS[name]
    return PROG if prefix else f"{PROG} {name}"


def has_subcommand(module: str, name: str) -> bool:
    """Whether ``python -m <module>`` offers the subcommand ``name`` (commands other modules may not have yet)."""
    if module == "generators":
        from generators.__main__ import build_parser
    else:
        from evaluation.__main__ import build_parser
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return name in action.choices
    return False


def app_parser() -> argparse.ArgumentParser:
    from generators.errors import OneLineParser
    from generators.limits import int_in

    parser = OneLineParser(
        prog=f"{PROG} app",
        description="Start the dashboard (streamlit run) on the run folders in --out-dir. Other options are "
        "Streamlit's own, passed on (e.g. --server.address 0.0.0.0).",
    )
    parser.add_argument(
        "--out-dir",
        default=DEFAULT_OUT_DIR,
        help="the folder of run folders to show, where the Train tab also writes (default: ./checkpoints, "
        "relative to the current folder)",
    )
    parser.add_argument("--port", type=int_in(1, 65535), help="the port to serve on (default: Streamlit's, 8501)")
    return parser


def app_command(argv: list[str]) -> list[str]:
    """The ``streamlit run`` command line of ``genlab app``; sets the runs folder in the environment."""
    args, streamlit_options = app_parser().parse_known_args(argv)
    out_dir = Path(args.out_dir).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{PROG} app: --out-dir {args.out_dir} is a file, not a folder of runs")
    if not SERVER.is_file():
        raise UserError(f"{PROG} app: the dashboard server {SERVER} is missing; reinstall the package")
    # absolute, so the dashboard and the training jobs it starts (in another working folder) agree on it
    os.environ[CHECKPOINTS_ENV] = str(out_dir)
    port = [] if args.port is None else ["--server.port", str(args.port)]
    return [sys.executable, "-m", "streamlit", "run", str(SERVER), *port, *streamlit_options]


def run_app(argv: list[str]) -> int:
    command = app_command(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(command[0], command)  # the server takes this process over: Ctrl-C and signals reach it directly
    return subprocess.call(command)


def dispatch(argv: list[str]) -> int:
    if not argv:
        raise UserError(f"{PROG}: a command is needed: {', '.join(COMMANDS)} (see --help)")
    name, rest = argv[0], argv[1:]
    if name in ("-h", "--help", "help"):
        print(usage())
        return 0
    if name == "--version":
        from generators import __version__

        print(f"{PROG} {__version__}")
        return 0
    if name not in COMMANDS:
        raise UserError(f"{PROG}: unknown command {name!r}: choose from {', '.join(COMMANDS)} (see --help)")
    if name == "app":
        return run_app(rest)
    module, prefix, _ = COMMANDS[name]
    if name == "sweep" and not has_subcommand(module, name):
        raise UserError(f"{PROG} sweep is not available yet in this version; train each β with {PROG} train")
    return module_main(module)([*prefix, *rest], program=program_name(name))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run_command(lambda: dispatch(argv))
    except BrokenPipeError:  # the output went to a reader that stopped early (genlab --help | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1


if __name__ == "__main__":
    sys.exit(main())
