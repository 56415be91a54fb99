"""Case 2: SIGINT (Ctrl-C) or SIGTERM (the dashboard's cancel) during training: a checkpoint is saved, the
process exits with 128 + signal and one line that says how to continue."""

from __future__ import annotations

import signal

import pytest

from generators.checkpoints import LOCK, load_resume_state, load_run

from .support import make_image_folder, start_cli, tiny_flags, wait_for


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_and_exits_cleanly(tmp_path, signum):
    images = make_image_folder(tmp_path / "images")
    progress = tmp_path / "progress.json"
    trainer = start_cli(
        "train",
        *tiny_flags("ae"),
        "--dataset",
        f"folder:{images}",
        "--steps",
        "100000",
        "--out-dir",
        str(tmp_path),
        "--run",
        "r",
        "--progress-json",
        str(progress),
    )
    wait_for(progress, trainer)
    trainer.send_signal(signum)
    _, stderr = trainer.communicate(timeout=120)

    assert trainer.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"interrupted by {signal.Signals(signum).name}: checkpoint saved")
    assert "--resume" in lines[0]
    _, info = load_run(tmp_path / "r")
    assert 1 <= info["step"] < 100000  # saved at the moment of the signal, not at the last epoch boundary only
    assert load_resume_state(tmp_path / "r")["step"] == info["step"]
    assert not (tmp_path / "r" / LOCK).exists()
