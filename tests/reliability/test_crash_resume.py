"""Case 1: kill -9 at random moments. The run folder always holds a whole checkpoint (the old one or the new
one, never a torn one) and resuming loses at most two checkpoint intervals (the harness writes a checkpoint in
the background while the next interval trains, and waits for it before the next one), then ends
exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import torch

from generators.checkpoints import LOCK, TEMP_MARK, WEIGHTS, load_resume_state, load_run, read_history

from .support import (
    STEPS_PER_EPOCH,
    fork_training,
    make_image_folder,
    read_all,
    run_cli,
    start_cli,
    tiny_flags,
    train_tiny,
    wait_for,
)

MODELS = ("vae", "ae", "dcgan")
TRIALS = 24
BUDGET = 10  # steps: a checkpoint every STEPS_PER_EPOCH = 2 steps, plus the first and the last


@pytest.fixture
def one_thread():
    """Forked children train on one thread; the reference and the resumed runs must too, for equal floats."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def check_killed_run(run_dir, last_reported: int) -> bool:
    """Assert the folder is whole after a kill; return whether it holds a checkpoint to resume."""
    if not (run_dir / WEIGHTS).exists():
        assert last_reported == 0, "steps were done but no checkpoint survived"
        return False
    _, info = load_run(run_dir)  # whole weights and a config that fits them
    saved = info["step"]
    assert saved <= last_reported, (saved, last_reported)
    assert last_reported - saved <= 2 * STEPS_PER_EPOCH, f"lost {last_reported - saved} steps, over two intervals"
    resume_step = load_resume_state(run_dir)["step"]  # written just before the weights: same or one interval on
    assert saved <= resume_step <= saved + STEPS_PER_EPOCH, (saved, resume_step)
    assert all(row["step"] <= last_reported for row in read_history(run_dir))
    return True


def test_kill_9_at_random_moments_never_tears_the_run_and_resume_ends_exactly(tmp_path, one_thread):
    images = make_image_folder(tmp_path / "images")
    reference, duration = {}, {}
    for model in MODELS:
        start = time.perf_counter()
        train_tiny(images, model, tmp_path / f"reference-{model}", BUDGET)
        duration[model] = time.perf_counter() - start
        reference[model] = load_run(tmp_path / f"reference-{model}")[0].state_dict()

    rng, killed_mid_run = random.Random(20240607), 0
    for trial in range(TRIALS):
        model, run_dir = MODELS[trial % len(MODELS)], tmp_path / f"trial-{trial}"
        pid, pipe = fork_training(images, model, run_dir, BUDGET)
        time.sleep(rng.uniform(0, duration[model]))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        reported = [int(step) for step in read_all(pipe).split()]
        if os.WIFSIGNALED(status) and (not reported or reported[-1] < BUDGET):
            killed_mid_run += 1
        resumable = check_killed_run(run_dir, reported[-1] if reported else 0)

        result = train_tiny(images, model, run_dir, BUDGET, resume=resumable, overwrite=not resumable)
        assert result["step"] == BUDGET
        resumed, info = load_run(run_dir)
        assert info["step"] == BUDGET
        for key, value in reference[model].items():
            assert torch.equal(value, resumed.state_dict()[key]), f"trial {trial} ({model}): {key} differs"
        assert [row["step"] for row in read_history(run_dir)] == list(range(1, BUDGET + 1))
        leftovers = [p.name for p in run_dir.iterdir() if TEMP_MARK in p.name or p.name == LOCK]
        assert leftovers == [], leftovers
    assert killed_mid_run >= TRIALS // 2, f"only {killed_mid_run} of {TRIALS} kills hit a running training"


def test_kill_9_of_the_command_line_then_resume_finishes(tmp_path):
    """The real command: SIGKILL leaves a stale lock and maybe temp files; the same command + --resume finishes."""
    images = make_image_folder(tmp_path / "images")
    progress = tmp_path / "progress.json"
    command = [
        "train",
        *tiny_flags("vae"),
        "--dataset",
        f"folder:{images}",
        "--steps",
        "30",
        "--out-dir",
        str(tmp_path),
        "--run",
        "r",
    ]
    trainer = start_cli(*command, "--progress-json", str(progress))
    wait_for(progress, trainer)
    trainer.send_signal(signal.SIGKILL)
    trainer.communicate()
    assert trainer.returncode == -signal.SIGKILL
    assert (tmp_path / "r" / LOCK).exists()  # nobody removed it: the next command must see its owner is dead
    _, info = load_run(tmp_path / "r")
    assert info["step"] < 30

    result = run_cli(*command, "--resume")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "trained vae for 30 steps" in result.stdout
    assert load_run(tmp_path / "r")[1]["step"] == 30
    assert not [p for p in (tmp_path / "r").iterdir() if TEMP_MARK in p.name or p.name == LOCK]
