"""``--lr-schedule cosine``: the learning rates each step trains with, resuming mid-decay, and its bad uses."""

import math
import os
import signal

import pytest
import torch

from generators.checkpoints import load_run, read_run_info
from generators.errors import UserError
from generators.train_config import lr_factor
from generators.training import Interrupted, TrainConfig, run_training
from tests import helpers


def test_cosine_factor_runs_from_one_to_zero():
    assert lr_factor("cosine", 0, 100) == 1.0
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 25, 100) == pytest.approx((1 + math.sqrt(0.5)) / 2)
    assert lr_factor("cosine", 99, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    assert lr_factor(None, 99, 100) == lr_factor("constant", 99, 100) == 1.0


def test_each_step_trains_with_the_cosine_rate(tmp_path):
    """The rate seen by the optimizer at every step is the model's rate times the factor of that step."""
    seen = []
    cfg = TrainConfig(steps=12, batch_size=32, lr_schedule="cosine")
    options = helpers.tiny_options("dcgan")

    def record(progress):  # called after each step
        seen.append(progress["step"])

    original = torch.optim.Adam.step
    rates = []

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"] / self.param_groups[0]["initial_lr"])
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = spy
    try:
        run_training("dcgan", options, cfg, tmp_path / "run", callback=record, show_progress=False)
    finally:
        torch.optim.Adam.step = original
    expected = [lr_factor("cosine", step, 12) for step in range(12) for _ in ("d", "g")]  # D then G each step
    assert rates == pytest.approx(expected)
    assert seen == list(range(1, 13))


def test_resumed_cosine_run_equals_an_uninterrupted_one(tmp_path):
    """Stopped after step 7 of 15 (SIGINT, as Ctrl-C does) and resumed, the run ends with the same weights."""
    cfg = TrainConfig(steps=15, batch_size=32, seed=2, lr_schedule="cosine")
    options = helpers.tiny_options("vae")
    run_training("vae", options, cfg, tmp_path / "straight", show_progress=False)

    def stop_at_7(progress):
        if progress["step"] == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        run_training("vae", options, cfg, tmp_path / "resumed", callback=stop_at_7, show_progress=False)
    assert 7 <= read_run_info(tmp_path / "resumed")["step"] < 15  # stopped at the next step all agree on
    run_training("vae", {}, TrainConfig(steps=15, batch_size=32, seed=2), tmp_path / "resumed", resume=True,
                 show_progress=False)  # fmt: skip
    straight, info = load_run(tmp_path / "straight")
    resumed, _ = load_run(tmp_path / "resumed")
    assert info["train_config"]["lr_schedule"] == "cosine"
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6, rtol=0), key


def test_a_constant_run_stores_no_schedule_and_cosine_is_refused_with_minutes(tmp_path):
    run_training("ae", helpers.tiny_options("ae"), TrainConfig(steps=2, batch_size=32), tmp_path / "a",
                 show_progress=False)  # fmt: skip
    assert "lr_schedule" not in read_run_info(tmp_path / "a")["train_config"]  # same config as older runs
    with pytest.raises(UserError, match="needs --steps or --epochs"):
        TrainConfig(minutes=1, lr_schedule="cosine")
    with pytest.raises(UserError, match="--lr-schedule must be one of"):
        TrainConfig(steps=5, lr_schedule="linear")


def test_cli_refuses_another_schedule_on_resume(tmp_path):
    flags = [*helpers.tiny_flags("ae"), "--steps", "2", "--batch-size", "32", "--out-dir", str(tmp_path)]
    first = helpers.run_cli("generators", "train", "ae", *flags, "--run", "r", "--lr-schedule", "cosine", "--quiet")
    assert first.returncode == 0, first.stderr
    again = helpers.run_cli("generators", "train", "ae", *flags, "--run", "r", "--resume", "--lr-schedule", "constant")
    helpers.assert_one_line_error(again, mentions="--lr-schedule cosine")
