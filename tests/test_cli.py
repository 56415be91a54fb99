"""The command line as a user types it: train, sample and list every model; bad input -> exit 2, one line."""

import numpy as np
import pytest

from generators.registry import MODELS
from tests.helpers import assert_one_line_error, run_cli, tiny_flags

TINY_FLAGS = {model: tiny_flags(model) for model in MODELS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    for model, flags in TINY_FLAGS.items():
        result = run_cli(
            "generators",
            "train",
            model,
            "--steps",
            "3",
            "--batch-size",
            "32",
            "--out-dir",
            str(out),
            *flags,
        )
        assert result.returncode == 0, result.stderr
        assert f"{model}-mnist5k" in result.stdout
    return out


@pytest.mark.parametrize("model", list(TINY_FLAGS))
def test_sample_writes_uint8_npy(runs, tmp_path, model):
    out = tmp_path / "s.npy"
    result = run_cli(
        "generators", "sample", str(runs / f"{model}-mnist5k"), "--n", "10", "--seed", "3", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    array = np.load(out)
    assert array.shape == (10, 1, 28, 28) and array.dtype == np.uint8
    again = tmp_path / "again.npy"
    run_cli("generators", "sample", str(runs / f"{model}-mnist5k"), "--n", "10", "--seed", "3", "--out", str(again))
    assert np.array_equal(array, np.load(again))


def test_list_shows_every_run(runs):
    result = run_cli("generators", "list", "--out-dir", str(runs))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["run", "model", "dataset", "steps", "epochs", "created"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {f"{m}-mnist5k" for m in TINY_FLAGS}
    assert all(rows[f"{m}-mnist5k"][1:4] == [m, "mnist5k", "3"] for m in TINY_FLAGS)


def test_existing_run_is_refused_and_kept(runs):
    before = (runs / "vae-mnist5k" / "model.safetensors").read_bytes()
    result = run_cli("generators", "train", "vae", "--steps", "2", "--out-dir", str(runs))
    assert_one_line_error(result, mentions="already exists")
    assert (runs / "vae-mnist5k" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    "args, mentions",
    [
        (["train", "gpt"], "unknown model"),
        (["train", "vae", "--dataset", "imagenet"], "unknown dataset"),
        (["train", "vae", "--beta", "-1"], "beta"),
        (["train", "vae", "--steps", "0"], "steps"),
        (["sample", "{runs}/does-not-exist", "--n", "4", "--out", "{tmp}/x.npy"], "does not exist"),
        (["sample", "{runs}/vae-mnist5k", "--n", "0", "--out", "{tmp}/x.npy"], "--n"),
    ],
)
def test_bad_input_exits_2_with_one_line(runs, tmp_path, args, mentions):
    args = [a.format(runs=runs, tmp=tmp_path) for a in args]
    if args[0] == "train":
        args += ["--out-dir", str(tmp_path)]
    assert_one_line_error(run_cli("generators", *args), mentions=mentions)


def test_benchmarks_bad_part_exits_2_with_one_line():
    assert_one_line_error(run_cli("benchmarks", "--only", "bogus"), mentions="invalid choice: 'bogus'")
    assert_one_line_error(run_cli("benchmarks", "--only"), mentions="expected at least one")  # not: measure all


def test_corrupt_safetensors_exits_2_naming_the_file(runs, tmp_path):
    run = tmp_path / "broken"
    run.mkdir()
    good = (runs / "ae-mnist5k" / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(good[: len(good) // 2])
    result = run_cli("generators", "sample", str(run), "--n", "4", "--out", str(tmp_path / "x.npy"))
    assert_one_line_error(result, mentions="model.safetensors")
    assert not (tmp_path / "x.npy").exists()
