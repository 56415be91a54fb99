"""Case 9: bad arguments. Exit 2 with one line that names the problem, no traceback, and no run folder made."""

from __future__ import annotations

import shutil

import pytest

import generators.__main__ as cli_module

from .support import assert_one_line_error, cli_in_process, make_image_folder, run_cli, train_tiny


def test_unknown_model_from_the_real_command_line(tmp_path):
    result = run_cli("train", "gan", "--steps", "2", "--out-dir", str(tmp_path))
    assert_one_line_error(result.returncode, result.stderr, "unknown model 'gan'", "vae")
    assert list(tmp_path.iterdir()) == []


TRAIN_CASES = {  # extra arguments -> words the error line must contain
    "unknown dataset": (["vae", "--dataset", "imagenet"], ["unknown dataset 'imagenet'", "mnist5k"]),
    "missing dataset folder": (["vae", "--dataset", "folder:/nonexistent/photos"], ["/nonexistent/photos"]),
    "zero steps": (["vae", "--steps", "0"], ["--steps", "positive"]),
    "negative steps": (["vae", "--steps", "-3"], ["--steps"]),
    "zero minutes": (["vae", "--minutes", "0"], ["--minutes", "positive"]),
    "negative minutes": (["vae", "--minutes", "-1.5"], ["--minutes"]),
    "zero epochs": (["vae", "--epochs", "0"], ["--epochs", "positive"]),
    "two budgets": (["vae", "--epochs", "1", "--steps", "2"], ["not allowed with"]),
    "negative beta": (["vae", "--beta", "-1", "--steps", "2"], ["--beta", ">= 0"]),
    "latent dim 0": (["vae", "--latent-dim", "0", "--steps", "2"], ["--latent-dim", "at least 1"]),
    "image size 7": (["vae", "--image-size", "7", "--steps", "2"], ["7x7", "between 16 and 256"]),
    "odd image size": (["vae", "--image-size", "17", "--steps", "2"], ["17x17", "even"]),
    "zero batch size": (["vae", "--batch-size", "0", "--steps", "2"], ["--batch-size"]),
    "two channels": (["vae", "--channels", "2", "--steps", "2"], ["--channels"]),
    "option of another model": (["dcgan", "--beta", "2", "--steps", "2"], ["--beta does not apply to dcgan"]),
    "unknown option": (["vae", "--betta", "2"], ["unrecognized arguments: --betta"]),
    "resume and overwrite": (["vae", "--steps", "2", "--resume", "--overwrite"], ["--resume or --overwrite"]),
    "device not here": (["vae", "--steps", "2", "--device", "cuda:99"], ["device 'cuda:99' is not usable"]),
    "run name is a path": (["vae", "--steps", "2", "--run", "../elsewhere"], ["plain folder name"]),
    "progress file in a missing folder": (
        ["vae", "--steps", "2", "--progress-json", "/nonexistent/p.json"],
        ["/nonexistent"],
    ),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_bad_train_arguments(tmp_path, capsys, case):
    args, mentions = TRAIN_CASES[case]
    code, out, err = cli_in_process(capsys, "train", *args, "--out-dir", str(tmp_path / "runs"), "--quiet")
    assert_one_line_error(code, err, *mentions)
    assert not (tmp_path / "runs").exists() and out == ""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("args")
    train_tiny(make_image_folder(root / "images"), "dcgan", root / "run", 2)
    return root / "run"


SAMPLE_CASES = {
    "zero n": (["--n", "0"], ["--n", "positive"]),
    "negative n": (["--n", "-5"], ["--n"]),
    "out in a missing folder": (["--n", "4", "--out", "{tmp}/missing/s.npy"], ["{tmp}/missing", "does not exist"]),
    "out not npy": (["--n", "4", "--out", "{tmp}/s.png"], ["must be a .npy file"]),
    "out is a folder": (["--n", "4", "--out", "{tmp}/folder.npy"], ["{tmp}/folder.npy"]),
    "unknown sampler": (["--n", "4", "--sampler", "flow"], ["invalid choice: 'flow'"]),
    "gmm without an encoder": (["--n", "4", "--sampler", "gmm"], ["encoder", "--sampler prior"]),
    "more samples than allowed": (["--n", str(10**13)], ["--n", "at most 1000000"]),
}


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_bad_sample_arguments(tiny_run, tmp_path, capsys, case):
    args, mentions = SAMPLE_CASES[case]
    (tmp_path / "folder.npy").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "s.npy")]
    code, _, err = cli_in_process(capsys, "sample", str(tiny_run), *args)
    assert_one_line_error(code, err, *(m.replace("{tmp}", str(tmp_path)) for m in mentions))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.npy"]  # nothing written, no temp file left


def test_sample_larger_than_the_free_disk_is_refused(tiny_run, tmp_path, capsys, monkeypatch):
    """The free space is faked (a real full disk is not at hand): 100 bytes free, 4 images of 16x16 need more."""
    real = shutil.disk_usage
    monkeypatch.setattr(cli_module.shutil, "disk_usage", lambda path: real(path)._replace(free=100))
    code, _, err = cli_in_process(capsys, "sample", str(tiny_run), "--n", "4", "--out", str(tmp_path / "s.npy"))
    assert_one_line_error(code, err, "GB free", "--n")
    assert list(tmp_path.iterdir()) == []


def test_sample_of_a_missing_run_names_it(tmp_path, capsys):
    code, _, err = cli_in_process(
        capsys, "sample", str(tmp_path / "nope"), "--n", "4", "--out", str(tmp_path / "s.npy")
    )
    assert_one_line_error(code, err, str(tmp_path / "nope"), "does not exist")


def test_no_command_and_unknown_command(capsys):
    for args in ([], ["fly"]):
        code, _, err = cli_in_process(capsys, *args)
        assert_one_line_error(code, err, "python -m generators")
