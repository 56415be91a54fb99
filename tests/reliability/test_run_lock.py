"""Case 7: two trainers of one run folder. The second refuses while the first lives (whatever flags it
has, and before touching any file); a lock left by a dead process is taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from generators.checkpoints import LOCK, WEIGHTS, load_run, read_run_info
from generators.errors import UserError

from .support import (
    assert_one_line_error,
    cli_in_process,
    fork_training,
    make_image_folder,
    read_all,
    tiny_flags,
    train_tiny,
)


@pytest.mark.parametrize("flags", [[], ["--resume"], ["--overwrite"]], ids=["plain", "resume", "overwrite"])
def test_second_trainer_of_a_live_run_refuses(tmp_path, capsys, flags):
    images = make_image_folder(tmp_path / "images")
    pid, pipe = fork_training(images, "ae", tmp_path / "r", 100_000)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "r" / WEIGHTS).exists():  # the first trainer holds the lock and has a checkpoint
            assert time.monotonic() < deadline
            time.sleep(0.02)
        before = read_run_info(tmp_path / "r")
        code, _, err = cli_in_process(
            capsys,
            "train",
            *tiny_flags("ae"),
            "--dataset",
            f"folder:{images}",
            "--steps",
            "4",
            "--out-dir",
            str(tmp_path),
            "--run",
            "r",
            *flags,
        )
        assert_one_line_error(code, err, "being trained by process", f"{pid}@")
        assert (tmp_path / "r" / LOCK).read_text() == f"{pid}@{socket.gethostname()}"  # its lock untouched
        assert read_run_info(tmp_path / "r")["created"] == before["created"]  # and its run not replaced
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        read_all(pipe)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("owner", ["dead process", "empty file", "garbage"])
def test_stale_lock_is_taken_over(tmp_path, owner):
    images = make_image_folder(tmp_path / "images")
    train_tiny(images, "vae", tmp_path / "r", 2)
    text = {"dead process": f"{dead_pid()}@{socket.gethostname()}", "empty file": "", "garbage": "\x00zz@"}[owner]
    (tmp_path / "r" / LOCK).write_text(text)
    train_tiny(images, "vae", tmp_path / "r", 4, resume=True)
    assert load_run(tmp_path / "r")[1]["step"] == 4
    assert not (tmp_path / "r" / LOCK).exists()


def test_unreaped_dead_trainer_does_not_hold_the_lock(tmp_path):
    """A killed child its parent (e.g. the dashboard) has not waited for yet is a zombie: dead, not training."""
    images = make_image_folder(tmp_path / "images")
    train_tiny(images, "vae", tmp_path / "r", 2)
    zombie = os.fork()
    if zombie == 0:
        os._exit(0)
    try:
        time.sleep(0.2)
        (tmp_path / "r" / LOCK).write_text(f"{zombie}@{socket.gethostname()}")
        train_tiny(images, "vae", tmp_path / "r", 4, resume=True)
        assert load_run(tmp_path / "r")[1]["step"] == 4
    finally:
        os.waitpid(zombie, 0)


def test_lock_of_another_machine_is_respected(tmp_path):
    """On a shared disk the pid means nothing here: a lock from another host is never taken over."""
    images = make_image_folder(tmp_path / "images")
    train_tiny(images, "vae", tmp_path / "r", 2)
    (tmp_path / "r" / LOCK).write_text("12345@some-other-host")
    with pytest.raises(UserError, match="being trained by process 12345@some-other-host"):
        train_tiny(images, "vae", tmp_path / "r", 4, resume=True)
    assert load_run(tmp_path / "r")[1]["step"] == 2
