"""Every usage and error line names the command the user typed: ``genlab train`` under the console script,
``python -m generators train`` under the module (the parsers run here in-process, as ``genlab`` runs them)."""

from __future__ import annotations

import subprocess

import pytest

from genlab.cli import COMMANDS
from genlab.cli import main as genlab_main
from tests.helpers import assert_one_line_error


def run(main, argv: list[str], capsys) -> subprocess.CompletedProcess:
    """``main(argv)``'s exit code and output, as a finished process (``--help`` ends in argparse's SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_genlab_command_s_usage_line_names_genlab_and_the_command(command, capsys):
    result = run(genlab_main, [command, "--help"], capsys)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: genlab {command} "), result.stdout.splitlines()[0]
    assert "python -m" not in result.stdout.split("\n\n")[0]  # the usage paragraph


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["train", "vae", "--steps", "0"], "genlab train: argument --steps"),
        (["sample", "run", "--n", "0", "--out", "x.npy"], "genlab sample: argument --n"),
        (["evaluate", "run", "--n", "0"], "genlab evaluate: argument --n"),
        (["findings"], "genlab findings: the following arguments are required: RUN_DIR"),
        (["sanity", "--n", "1"], "genlab sanity: argument --n"),
        # a sweep's points are parsed by the train parser: under its genlab name too
        (["sweep", "vae", "--set", "beta=1,2", "--batch-size", "0"], "genlab train: argument --batch-size"),
    ],
)
def test_genlab_errors_name_the_command_typed(argv, mentions, capsys):
    assert_one_line_error(run(genlab_main, argv, capsys), mentions=mentions)


@pytest.mark.parametrize("subcommand", ["train", "sample", "list", "sweep"])
def test_the_module_commands_keep_their_python_m_name(subcommand, capsys):
    from generators.__main__ import main

    result = run(main, [subcommand, "--help"], capsys)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m generators {subcommand} ")


@pytest.mark.parametrize(
    ("argv", "usage"),
    [(["--help"], "python -m evaluation "), (["findings", "--help"], "python -m evaluation findings ")],
)
def test_the_evaluation_commands_keep_their_python_m_name(argv, usage, capsys):
    from evaluation.__main__ import main

    result = run(main, argv, capsys)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {usage}")


def test_train_help_names_every_data_set_the_loader_accepts(capsys):
    """The --dataset help is built from the loader's own list, so sprites and dsprites:PATH are not left out."""
    from generators.__main__ import main
    from generators.data import DATASET_NAMES

    help_text = " ".join(run(main, ["train", "--help"], capsys).stdout.split())
    for name in ("sprites", "sprites-color", "dsprites:PATH", "folder:PATH", "mnist5k"):
        assert name in DATASET_NAMES and name in help_text
