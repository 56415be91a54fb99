"""Numbers from the command line and from run files: NaN and infinity, values past 64 bits, sizes without an
upper bound, text where a number belongs. Every one is refused with one ``error:`` line (exit 2) or accepted
within the documented limits (RELIABILITY.md, "Limits") — never a traceback, never a run folder left behind.

The property-based tests (hypothesis) stop before training: ``Trainer.fit`` is replaced by a stub, so an accepted
combination costs a dataset load and a tiny model build, and a refused one costs nothing."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evaluation.__main__ as evaluation_cli
from generators import training
from generators.errors import UserError
from generators.limits import MAX_SAMPLES, MAX_SEED
from generators.registry import MODELS
from generators.training import TrainConfig

from .support import TINY, assert_one_line_error, cli_in_process, make_image_folder, tiny_flags, train_tiny

PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)

# Values a hostile or careless user types: small valid ones, zero and negatives, past every limit, past 64 bits,
# NaN/inf in every spelling, fractions where integers belong, and text.
NUMBER_TEXT = st.one_of(
    st.integers(-3, 4).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e308", "1e309", "-0", "0.5", "1e-320", "", " ", "0x10", "1_0"]),
    st.integers(min_value=2**31).map(str),
    st.integers(max_value=-(2**31)).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("numbers") / "images")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, images):
    run_dir = tmp_path_factory.mktemp("numbers-run") / "r"
    train_tiny(images, "vae", run_dir, 2)
    return run_dir


def config_value():
    return st.one_of(
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.text(max_size=5),
        st.lists(st.integers(-5, 300), max_size=4),
    )


@PROPERTY
@given(model=st.sampled_from(sorted(MODELS)), data=st.data())
def test_model_configs_accept_only_finite_values_in_range(model, data):
    cls = MODELS[model].Config
    field = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls)]))
    value = data.draw(config_value())
    try:
        config = cls(**{field: value})
    except UserError:
        return
    for f in dataclasses.fields(config):  # accepted: every number is finite, ints are ints
        stored = getattr(config, f.name)
        if str(f.type) == "float":
            assert isinstance(stored, float) and math.isfinite(stored)
        if str(f.type) == "int":
            assert isinstance(stored, int) and not isinstance(stored, bool) and abs(stored) <= 10**9
    assert config.latent_dim <= 1024 and config.image_shape[1] <= 256


@PROPERTY
@given(data=st.data())
def test_train_config_accepts_only_values_in_range(data):
    field = data.draw(st.sampled_from([f.name for f in dataclasses.fields(TrainConfig)]))
    try:
        cfg = TrainConfig(**{field: data.draw(config_value())})
    except UserError:
        return
    assert 0 <= cfg.seed <= MAX_SEED and cfg.batch_size >= 1
    assert cfg.minutes is None or math.isfinite(cfg.minutes)


TRAIN_OPTIONS = {  # option -> models it applies to
    "--steps": ["vae"],
    "--epochs": ["ae"],
    "--minutes": ["vae"],
    "--batch-size": ["vae"],
    "--seed": ["ae"],
    "--image-size": ["vae"],
    "--latent-dim": ["vae", "dcgan"],
    "--base-width": ["ae"],
    "--hidden-dim": ["vae"],
    "--extra-convs": ["ae"],
    "--lr": ["vae"],
    "--beta": ["vae"],
    "--kl-warmup-steps": ["vae"],
    "--g-width": ["dcgan"],
    "--d-width": ["dcgan"],
    "--lr-g": ["dcgan"],
    "--lr-d": ["dcgan"],
    "--beta1": ["dcgan"],
    "--beta2": ["dcgan"],
    "--ema": ["dcgan"],
}
SMALL = {"--image-size": "16", "--batch-size": "4"}  # accepted values of these must stay small to stay fast


@PROPERTY
@given(option=st.sampled_from(sorted(TRAIN_OPTIONS)), text=NUMBER_TEXT, data=st.data())
def test_train_command_gives_exit_0_or_one_error_line(images, capsys, monkeypatch, option, text, data):
    model = data.draw(st.sampled_from(TRAIN_OPTIONS[option]))
    monkeypatch.setattr(training.Trainer, "fit", lambda self: {"step": 0, "epoch": 0, "seconds": 0.0})
    if option in SMALL and text.strip().lstrip("+").isdigit() and int(text) > int(SMALL[option]):
        text = str(int(text) + 10**6 * int(SMALL[option]))  # past the limit: refused, not trained at that size
    budget = [] if option in ("--steps", "--epochs", "--minutes") else ["--steps", "1"]
    with tempfile.TemporaryDirectory() as out:
        code, _, err = cli_in_process(
            capsys,
            "train",
            *tiny_flags(model),
            "--dataset",
            f"folder:{images}",
            *budget,
            "--out-dir",
            out,
            "--run",
            "r",
            f"{option}={text}",
        )
        if code != 0:
            assert_one_line_error(code, err, option if "expected one argument" not in err else "")
            assert list(Path(out).iterdir()) == []  # nothing made for a refused value


@PROPERTY
@given(option=st.sampled_from(["--n", "--seed", "--batch-size"]), text=NUMBER_TEXT)
def test_sample_command_gives_exit_0_or_one_error_line(tiny_run, capsys, option, text):
    if option == "--n" and text.strip().lstrip("+").isdigit() and 64 < int(text) <= MAX_SAMPLES:
        text = str(MAX_SAMPLES + int(text))  # keep accepted sizes small: past the limit is what is tested here
    with tempfile.TemporaryDirectory() as out:
        target = Path(out) / "s.npy"
        args = ["--n", "3", "--out", str(target)] if option != "--n" else ["--out", str(target)]
        code, _, err = cli_in_process(capsys, "sample", str(tiny_run), *args, f"{option}={text}")
        if code == 0:
            assert np.load(target).dtype == np.uint8
        else:
            assert_one_line_error(code, err, option)
            assert list(Path(out).iterdir()) == []


@PROPERTY
@given(option=st.sampled_from(["--n", "--seed", "--seeds", "--iwae-k", "--inversion-steps"]), text=NUMBER_TEXT)
def test_evaluation_arguments_are_checked_at_the_boundary(option, text):
    try:
        args = evaluation_cli.parse_args(["run", f"{option}={text}"])
    except UserError as exc:
        assert "\n" not in str(exc) and option.lstrip("-").split("-")[0] in str(exc)
        return
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    values = value if isinstance(value, list) else [value]
    assert all(isinstance(v, int) and v >= 0 for v in values)


def test_seed_past_64_bits_is_refused_by_train_and_sample(images, tiny_run, tmp_path, capsys):
    code, _, err = cli_in_process(
        capsys, "train", *tiny_flags("ae"), "--dataset", f"folder:{images}", "--steps", "1", "--out-dir",
        str(tmp_path / "runs"), "--seed", str(2**64),
    )  # fmt: skip
    assert_one_line_error(code, err, "--seed", str(MAX_SEED))
    assert not (tmp_path / "runs").exists()
    code, _, err = cli_in_process(capsys, "sample", str(tiny_run), "--n", "2", "--seed", str(2**64), "--out",
                                  str(tmp_path / "s.npy"))  # fmt: skip
    assert_one_line_error(code, err, "--seed")
    code, _, err = cli_in_process(capsys, "sample", str(tiny_run), "--n", "2", "--seed", str(MAX_SEED), "--out",
                                  str(tmp_path / "s.npy"))  # fmt: skip
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (2, 1, 16, 16)  # the largest seed works


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--lr", "nan"], ["--lr", "finite"]),
        (["--lr", "inf"], ["--lr"]),
        (["--beta", "nan"], ["--beta", "finite"]),
        (["--beta", "-inf"], ["--beta"]),
        (["--minutes", "inf"], ["--minutes", "finite"]),
        (["--minutes", "nan"], ["--minutes"]),
        (["--latent-dim", str(10**9)], ["--latent-dim", "1024"]),
        (["--hidden-dim", str(10**6)], ["--hidden-dim"]),
        (["--base-width", str(10**5)], ["--base-width"]),
        (["--batch-size", str(10**9)], ["--batch-size"]),
        (["--steps", str(10**12)], ["--steps"]),
        (["--kl-warmup-steps", str(10**12)], ["--kl-warmup-steps"]),
    ],
)
def test_non_finite_and_huge_train_values_are_refused(images, tmp_path, capsys, flags, words):
    code, _, err = cli_in_process(
        capsys, "train", *tiny_flags("vae"), "--dataset", f"folder:{images}", "--out-dir", str(tmp_path / "runs"),
        *flags,
    )  # fmt: skip
    assert_one_line_error(code, err, *words)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "flags, words",
    [(["--beta1", "1"], ["--beta1", "[0, 1)"]), (["--beta2", "-0.1"], ["--beta2"]), (["--beta1", "nan"], ["--beta1"]),
     (["--lr-g", "nan"], ["--lr-g"]), (["--ema", "inf"], ["--ema"])],
)  # fmt: skip
def test_dcgan_adam_betas_and_rates_are_checked(images, tmp_path, capsys, flags, words):
    code, _, err = cli_in_process(
        capsys, "train", *tiny_flags("dcgan"), "--dataset", f"folder:{images}", "--out-dir", str(tmp_path / "runs"),
        *flags,
    )  # fmt: skip
    assert_one_line_error(code, err, *words)


def test_tiny_configs_are_accepted():
    """Control: the values the suite trains with pass every check."""
    for model, options in TINY.items():
        MODELS[model].Config(**options, image_shape=(1, 16, 16))


def test_largest_seed_trains_past_its_first_epoch_and_resumes(images, tmp_path):
    """The batch order of each epoch is seeded from the run's seed: the largest allowed seed must not overflow
    (it did after the first checkpoint, before the seed was bounded and the epoch seed taken modulo 2**64)."""
    cfg = dict(dataset=f"folder:{images}", image_size=16, channels=1, batch_size=4, seed=MAX_SEED)
    result = training.run_training("ae", TINY["ae"], TrainConfig(**cfg, steps=3), tmp_path / "r", show_progress=False)
    assert result["step"] == 3
    resumed = training.run_training(
        "ae", TINY["ae"], TrainConfig(**cfg, steps=5), tmp_path / "r", resume=True, show_progress=False
    )
    assert resumed["step"] == 5
