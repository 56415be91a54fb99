"""Case 4: a write that fails (disk full, no permission) on the temp file or on ``os.replace``: the previous
checkpoint stays byte for byte, no temp file is left, and the user gets one line naming the file."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import numpy as np
import pytest

import generators.__main__ as cli_module
from generators import checkpoints
from generators.checkpoints import TEMP_MARK, WEIGHTS, load_run
from generators.errors import UserError, WriteFailed

from .support import STEPS_PER_EPOCH, assert_one_line_error, cli_in_process, make_image_folder, tiny_flags, train_tiny

FAILURES = {"ENOSPC": (errno.ENOSPC, "No space left on device"), "EACCES": (errno.EACCES, "Permission denied")}


def fail_writes_of(name: str, where: str, code: int, monkeypatch) -> None:
    """Make writing ``name`` fail with ``code``, either on opening its temp file or on its ``os.replace``."""

    def refuse():
        raise OSError(code, os.strerror(code))

    if where == "temp file":

        def fake_open(path, *args, **kwargs):
            if Path(path).name.startswith(f".{name}{TEMP_MARK}"):
                refuse()
            return builtins.open(path, *args, **kwargs)

        monkeypatch.setattr(checkpoints, "open", fake_open, raising=False)
    else:
        real_replace = os.replace

        def fake_replace(src, dst, *args, **kwargs):
            if Path(dst).name == name:
                refuse()
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(checkpoints.os, "replace", fake_replace)


@pytest.fixture
def run_at_step_4(tmp_path):
    images = make_image_folder(tmp_path / "images")
    train_tiny(images, "vae", tmp_path / "r", 2 * STEPS_PER_EPOCH)
    return images, tmp_path / "r"


@pytest.mark.parametrize("where", ["temp file", "os.replace"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_failing_checkpoint_write_keeps_the_previous_checkpoint(run_at_step_4, monkeypatch, where, failure):
    images, run_dir = run_at_step_4
    before = (run_dir / WEIGHTS).read_bytes()
    code, text = FAILURES[failure]
    fail_writes_of(WEIGHTS, where, code, monkeypatch)
    with pytest.raises(WriteFailed) as caught:
        train_tiny(images, "vae", run_dir, 4 * STEPS_PER_EPOCH, resume=True)
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
    assert str(run_dir / WEIGHTS) in message and text in message and "\n" not in message
    monkeypatch.undo()
    assert (run_dir / WEIGHTS).read_bytes() == before
    assert load_run(run_dir)[1]["step"] == 2 * STEPS_PER_EPOCH
    assert not [p.name for p in run_dir.iterdir() if TEMP_MARK in p.name]


def test_disk_full_during_training_is_one_line_from_the_command(run_at_step_4, monkeypatch, capsys):
    images, run_dir = run_at_step_4
    fail_writes_of(WEIGHTS, "os.replace", errno.ENOSPC, monkeypatch)
    code, _, err = cli_in_process(
        capsys,
        "train",
        *tiny_flags("vae"),
        "--dataset",
        f"folder:{images}",
        "--steps",
        "8",
        "--out-dir",
        str(run_dir.parent),
        "--run",
        "r",
        "--resume",
    )
    assert_one_line_error(code, err, str(run_dir / WEIGHTS), "No space left on device", "previous version")


def test_disk_full_while_sampling_leaves_no_partial_file(run_at_step_4, monkeypatch, capsys, tmp_path):
    _, run_dir = run_at_step_4
    out = tmp_path / "samples.npy"
    real_open = builtins.open

    class FullDisk:
        """A file that accepts the .npy header, then runs out of space."""

        def __init__(self, path, mode):
            self.fh, self.writes = real_open(path, mode), 0

        def write(self, data):
            self.writes += 1
            if self.writes > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(cli_module, "open", FullDisk, raising=False)
    code, _, err = cli_in_process(capsys, "sample", str(run_dir), "--n", "500", "--batch-size", "50", "--out", str(out))
    assert_one_line_error(code, err, str(out), "No space left on device")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]
    monkeypatch.undo()
    code, _, err = cli_in_process(capsys, "sample", str(run_dir), "--n", "500", "--batch-size", "50", "--out", str(out))
    assert code == 0 and np.load(out).shape == (500, 1, 16, 16)  # the same command works once there is space
