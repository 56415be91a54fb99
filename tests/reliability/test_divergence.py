"""Case 3: divergence. A huge learning rate or an injected NaN stops the run with one clear message; the last
good checkpoint stays, loads, and holds finite weights."""

from __future__ import annotations

import pytest
import torch

from generators.checkpoints import load_run
from generators.training import Diverged

from .support import (
    STEPS_PER_EPOCH,
    assert_one_line_error,
    make_image_folder,
    poison_vae_steps,
    run_cli,
    tiny_flags,
    train_tiny,
)


def assert_last_good_checkpoint(run_dir, before_step: int) -> None:
    model, info = load_run(run_dir)
    assert info["step"] < before_step
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


def test_huge_learning_rate_stops_with_one_line_and_keeps_a_good_checkpoint(tmp_path):
    images = make_image_folder(tmp_path / "images")
    result = run_cli(
        "train",
        *tiny_flags("vae"),
        "--lr",
        "1e6",
        "--dataset",
        f"folder:{images}",
        "--steps",
        "200",
        "--out-dir",
        str(tmp_path),
        "--run",
        "r",
    )
    assert_one_line_error(
        result.returncode, result.stderr, "diverged", "last good checkpoint", "learning rate", expected_code=1
    )
    assert_last_good_checkpoint(tmp_path / "r", 200)


def test_injected_nan_loss_stops_at_that_step(tmp_path, monkeypatch):
    images = make_image_folder(tmp_path / "images")
    poison_vae_steps(monkeypatch, at_step=5, weights=False)
    with pytest.raises(Diverged, match="loss became nan at step 5"):
        train_tiny(images, "vae", tmp_path / "r", 50)
    assert_last_good_checkpoint(tmp_path / "r", 5)
    assert load_run(tmp_path / "r")[1]["step"] == 4  # the checkpoint of the last epoch boundary before step 5


def test_nan_weights_behind_a_finite_loss_are_never_saved(tmp_path, monkeypatch):
    """The optimizer step after the last finite loss can already write NaN into the weights: that checkpoint
    must not replace the last good one."""
    images = make_image_folder(tmp_path / "images")
    poison_vae_steps(monkeypatch, at_step=3 * STEPS_PER_EPOCH, weights=True)  # an epoch boundary
    with pytest.raises(Diverged, match="NaN or infinite"):
        train_tiny(images, "vae", tmp_path / "r", 50)
    assert_last_good_checkpoint(tmp_path / "r", 50)
    assert load_run(tmp_path / "r")[1]["step"] == 2 * STEPS_PER_EPOCH
