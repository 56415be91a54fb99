"""The default runs are defined once (generators/default_runs.py): scripts/make_checkpoints.sh and the Makefile run
exactly those recipes, thread counts, samplers and experiments (read through the script's --dry-run, which prints
the commands instead of running them), and each recipe is the one the committed run in checkpoints/ was trained
with."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from generators.checkpoints import read_run_info
from generators.default_runs import DEFAULT_RUNS, DEFAULT_THREADS, RUNS, main
from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "make_checkpoints.sh"


def dry_run(*args: str, out, threads: str | None = None) -> list[list[str]]:
    """The commands ``make_checkpoints.sh --dry-run ARGS`` would run, each split into words."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update({"OUT": str(out), "PYTHON": sys.executable, **({"OMP_NUM_THREADS": threads} if threads else {})})
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def commands_of(commands: list[list[str]], run_dir) -> list[list[str]]:
    """The commands that train or score the run in ``run_dir`` (each starts with its thread count)."""
    own = (str(run_dir), run_dir.name)  # a score's folder, or the train command's --run
    return [words for words in commands if words[0].startswith("OMP_NUM_THREADS=") and set(own) & set(words)]


def test_the_script_trains_every_default_run_in_order_with_its_recipe_and_thread_count(tmp_path):
    commands = dry_run(out=tmp_path)
    trained = [words for words in commands if words[2:5] == ["-m", "generators", "train"]]
    assert [words[words.index("--run") + 1] for words in trained] == list(DEFAULT_RUNS)
    for words, run in zip(trained, RUNS.values()):
        threads = run.threads or DEFAULT_THREADS
        assert words == [
            f"OMP_NUM_THREADS={threads}",
            sys.executable,
            "-m",
            "generators",
            "train",
            *run.train_args,
            *("--run", run.name, "--out-dir", str(tmp_path), "--overwrite", "--quiet"),
        ]


def test_the_script_scores_each_run_with_its_samplers_and_experiments(tmp_path):
    commands = dry_run(out=tmp_path)
    for run in RUNS.values():
        run_dir = tmp_path / run.name
        own = commands_of(commands, run_dir)
        evaluations = [words[2:] for words in own if words[2:4] == ["-m", "evaluation"]]
        samplers = [words[words.index("--sampler") + 1] for words in evaluations if "--sampler" in words]
        assert samplers == list(run.fitted_samplers), run.name
        assert (["-m", "evaluation", "augment", str(run_dir)] in evaluations) == run.augment, run.name
        assert (["-m", "evaluation", "compress", str(run_dir), "--no-cache"] in evaluations) == run.compress, run.name
        threads = {words[0] for words in own}
        assert threads == {f"OMP_NUM_THREADS={run.threads or DEFAULT_THREADS}"}, run.name  # trained and scored alike


def test_a_run_without_its_own_thread_count_takes_the_environment_s(tmp_path):
    fixed = next(run for run in RUNS.values() if run.threads)
    free = next(run for run in RUNS.values() if not run.threads)
    commands = dry_run(fixed.name, free.name, out=tmp_path, threads="3")
    assert commands_of(commands, tmp_path / fixed.name)[0][0] == f"OMP_NUM_THREADS={fixed.threads}"
    assert commands_of(commands, tmp_path / free.name)[0][0] == "OMP_NUM_THREADS=3"


def test_evaluate_only_keeps_the_weights_and_an_unknown_run_is_refused(tmp_path):
    name = DEFAULT_RUNS[0]
    commands = dry_run("--evaluate-only", name, out=tmp_path)
    assert commands[0] == ["rm", "-f", str(tmp_path / name / "metrics.json")]
    assert not any("train" in words for words in commands)
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "no-such-run"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and result.stderr.startswith("error: unknown default run no-such-run")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_makefile_offers_each_default_run_as_a_target():
    result = subprocess.run(
        ["make", "-n", f"PYTHON={sys.executable}", *DEFAULT_RUNS], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"PYTHON={sys.executable} bash scripts/make_checkpoints.sh {name}" for name in DEFAULT_RUNS
    ]


def test_the_command_line_answers_the_script_s_questions(capsys):
    run = next(run for run in RUNS.values() if run.fitted_samplers)
    assert main(["names"]) == 0 and capsys.readouterr().out.split() == list(DEFAULT_RUNS)
    assert main(["recipe", run.name]) == 0 and capsys.readouterr().out.split() == run.train_args
    assert main(["samplers", run.name]) == 0 and capsys.readouterr().out.split() == list(run.fitted_samplers)
    assert main(["recipe", "no-such-run"]) == 2 and "unknown default run" in capsys.readouterr().err


@pytest.mark.parametrize("name", DEFAULT_RUNS)
def test_each_recipe_is_the_one_the_committed_run_was_trained_with(name):
    from generators.__main__ import build_parser, train_settings

    args = build_parser().parse_args(["train", *RUNS[name].train_args])
    options, cfg = train_settings(args, args.seed)
    info = read_run_info(ROOT / "checkpoints" / name)
    assert info["model"] == args.model
    assert {key: info["model_config"][key] for key in options} == options
    stored = info["train_config"]
    assert (stored["dataset"], stored["batch_size"], stored["seed"]) == (cfg.dataset, cfg.batch_size, cfg.seed)
    assert info["step"] == cfg.steps
