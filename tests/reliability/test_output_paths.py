"""Output paths may never destroy anything: every file a user names for output (evaluation tables,
``train --progress-json``, ``sample --out``) is refused, in one line with exit 2, when it lies in a run folder,
when it would replace a file of another kind without ``--force``, or when one command names it twice."""

from __future__ import annotations

import json

import numpy as np
import pytest

import evaluation.__main__ as evaluation_cli
from evaluation import report, runner
from generators.checkpoints import HISTORY, WEIGHTS, load_run
from generators.errors import UserError
from generators.outputs import Output, check_outputs, is_own_kind

from .support import assert_one_line_error, cli_in_process, snapshot, tiny_flags


@pytest.fixture
def stub_evaluation(monkeypatch):
    """``python -m evaluation`` without scoring anything: one fixed row, so only the output handling runs."""
    monkeypatch.setattr(runner, "check_inputs", lambda *a, **k: {"dataset": "mnist5k"})
    monkeypatch.setattr(runner, "evaluate_run", lambda run_dir, **k: {"run": str(run_dir)})
    monkeypatch.setattr(report, "to_text", lambda rows, width=None: "table")
    for fmt in evaluation_cli.FORMATS:
        monkeypatch.setattr(report, f"to_{fmt}", lambda rows, fmt=fmt: f"new {fmt}")


def evaluation(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = evaluation_cli.main(list(argv))
    return code, capsys.readouterr().err


def test_evaluation_tables_over_the_runs_own_files_are_refused(run, capsys):
    """Item 1: `--json RUN/model.safetensors --csv RUN/history.csv` replaced the run's weights and history."""
    before = snapshot(run)
    code, err = evaluation(capsys, str(run), "--json", str(run / WEIGHTS), "--csv", str(run / HISTORY))
    assert_one_line_error(code, err, "--json", "inside the run folder")
    assert snapshot(run) == before
    load_run(run)  # the run still loads


@pytest.mark.parametrize("fmt", evaluation_cli.FORMATS)
def test_a_new_table_inside_a_run_folder_is_refused(stub_evaluation, run, capsys, fmt):
    before = snapshot(run)
    code, err = evaluation(capsys, str(run), f"--{fmt}", str(run / f"table.{fmt}"))
    assert_one_line_error(code, err, f"--{fmt}", "inside the run folder")
    assert snapshot(run) == before


def test_a_link_into_a_run_folder_is_refused(stub_evaluation, run, tmp_path, capsys):
    link = tmp_path / "table.json"
    link.symlink_to(run / WEIGHTS)
    before = snapshot(run)
    code, err = evaluation(capsys, str(run), "--json", str(link))
    assert_one_line_error(code, err, "--json", "inside the run folder")
    assert snapshot(run) == before and link.is_symlink()


def test_a_folder_being_trained_counts_as_a_run_folder(stub_evaluation, tmp_path, capsys):
    """A run being started (only its lock) or an unfinished one (only resume.pt) is a run folder too."""
    for marker in (".lock", "resume.pt"):
        folder = tmp_path / marker.strip(".")
        folder.mkdir()
        (folder / marker).write_bytes(b"x")
        code, err = evaluation(capsys, "r", "--markdown", str(folder / "t.md"))
        assert_one_line_error(code, err, "inside the run folder")


def test_evaluation_refuses_to_replace_a_file_of_another_kind(stub_evaluation, tmp_path, capsys):
    weights = tmp_path / "classmate.safetensors"  # (a model.safetensors would make tmp_path a run folder)
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    code, err = evaluation(capsys, "r", "--json", str(weights))
    assert_one_line_error(code, err, "--json", "--force")
    assert weights.read_bytes().startswith(b"\x08")
    # the right extension but other content (a binary file renamed .json): still refused
    fake = tmp_path / "table.json"
    fake.write_bytes(b"\x93NUMPY\x01\x00binary")
    code, err = evaluation(capsys, "r", "--json", str(fake))
    assert_one_line_error(code, err, "--json", "--force")
    # --force replaces it (outside a run folder only)
    code, err = evaluation(capsys, "r", "--json", str(weights), "--force")
    assert code == 0, err
    assert weights.read_text() == "new json"


def test_evaluation_replaces_an_older_table_of_its_own_kind(stub_evaluation, tmp_path, capsys):
    paths = {"json": "t.json", "csv": "t.csv", "markdown": "t.md", "latex": "t.tex"}
    argv = []
    for fmt, name in paths.items():
        (tmp_path / name).write_text("[1]" if fmt == "json" else "old table\n")
        argv += [f"--{fmt}", str(tmp_path / name)]
    code, err = evaluation(capsys, "r", *argv)
    assert code == 0, err
    assert all((tmp_path / name).read_text() == f"new {fmt}" for fmt, name in paths.items())


def test_the_same_output_twice_is_refused(stub_evaluation, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    code, err = evaluation(capsys, "r", "--json", str(tmp_path / "t"), "--csv", str(tmp_path / "sub" / ".." / "t"))
    assert_one_line_error(code, err, "--json", "--csv", "same file")
    assert not (tmp_path / "t").exists()


def test_sanity_outputs_are_checked_the_same_way(run, capsys):
    before = snapshot(run)
    code, err = evaluation(capsys, "sanity", "--json", str(run / WEIGHTS))
    assert_one_line_error(code, err, "inside the run folder")
    code, err = evaluation(capsys, "sanity", "--json", str(run.parent / "p"), "--markdown", str(run.parent / "p"))
    assert_one_line_error(code, err, "same file")
    assert snapshot(run) == before


def train_args(images, out_dir, *extra):
    return ["train", *tiny_flags("ae"), "--dataset", f"folder:{images}", "--steps", "2", "--out-dir", str(out_dir),
            *extra]  # fmt: skip


def test_progress_json_over_another_runs_weights_is_refused(made, run, tmp_path, capsys):
    """Item 2: `train --run other --progress-json CK/victim/model.safetensors` turned the weights into JSON."""
    before = snapshot(run)
    runs = tmp_path / "runs"
    code, _, err = cli_in_process(
        capsys, *train_args(made[0], runs, "--run", "other", "--progress-json", str(run / WEIGHTS))
    )
    assert_one_line_error(code, err, "--progress-json", "inside the run folder")
    assert snapshot(run) == before and not (runs / "other").exists()


def test_progress_json_over_a_run_file_of_its_own_new_run_is_refused(made, tmp_path, capsys):
    runs = tmp_path / "runs"
    code, _, err = cli_in_process(
        capsys, *train_args(made[0], runs, "--run", "r", "--progress-json", str(runs / "r" / HISTORY))
    )
    assert_one_line_error(code, err, "--progress-json", "run's own files")


def test_progress_json_over_a_file_of_another_kind_needs_force(made, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    runs = tmp_path / "runs"
    code, _, err = cli_in_process(capsys, *train_args(made[0], runs, "--progress-json", str(notes)))
    assert_one_line_error(code, err, "--progress-json", "--force")
    assert notes.read_text() == "my notes\n" and not runs.exists()
    old = tmp_path / "progress.json"  # a progress file of an earlier run is JSON: replaced without --force
    old.write_text(json.dumps({"step": 99}))
    code, _, err = cli_in_process(capsys, *train_args(made[0], runs, "--progress-json", str(old)))
    assert code == 0, err
    assert json.loads(old.read_text())["step"] == 2


def test_progress_json_inside_the_run_it_resumes_is_accepted(made, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert cli_in_process(capsys, *train_args(made[0], runs, "--run", "r"))[0] == 0
    progress = runs / "r" / "progress.json"
    code, _, err = cli_in_process(
        capsys, *train_args(made[0], runs, "--run", "r", "--resume", "--progress-json", str(progress))
    )
    assert code == 0, err


def test_sample_out_inside_a_run_folder_is_refused(run, tmp_path, capsys):
    before = snapshot(run)
    code, _, err = cli_in_process(capsys, "sample", str(run), "--n", "4", "--out", str(run / "s.npy"))
    assert_one_line_error(code, err, "--out", "inside the run folder")
    assert snapshot(run) == before


def test_sample_over_a_file_of_another_kind_needs_force(run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    out.write_text("not an array")
    code, _, err = cli_in_process(capsys, "sample", str(run), "--n", "4", "--out", str(out))
    assert_one_line_error(code, err, "--out", "--force")
    assert out.read_text() == "not an array"
    code, _, err = cli_in_process(capsys, "sample", str(run), "--n", "4", "--out", str(out), "--force")
    assert code == 0, err
    assert np.load(out).shape == (4, 1, 16, 16)
    code, _, err = cli_in_process(capsys, "sample", str(run), "--n", "4", "--out", str(out))  # an array: replaced
    assert code == 0, err


def test_own_kind_is_judged_by_extension_and_content(tmp_path):
    cases = {
        ("a.json", b'{"x": 1}', "json"): True,
        ("a.json", b"", "json"): True,
        ("a", b"[1, 2]", "json"): True,
        ("a.json", b"\x00\x01", "json"): False,
        ("a.safetensors", b'{"x": 1}', "json"): False,
        ("a.md", b"| a |\n", "markdown"): True,
        ("a.py", b"print(1)\n", "markdown"): False,
        ("a.csv", b"\xff\xfe\x00", "csv"): False,
        ("a.npy", b"\x93NUMPY\x01\x00", "npy"): True,
        ("a.npy", b"text", "npy"): False,
    }
    for (name, data, kind), expected in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert is_own_kind(path, kind) is expected, (name, data, kind)


def test_a_fifo_as_output_is_refused(tmp_path):
    import os

    fifo = tmp_path / "t.json"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        check_outputs([Output("--json", fifo, "json")], force=True)
