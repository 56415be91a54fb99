"""Shared pieces of the reliability suite: a tiny image folder, tiny models, and ways to run the CLI.

Everything trains on 12 grey 16x16 images with nets a few channels wide, so one step takes milliseconds
and a checkpoint (every epoch = every 2 steps at batch size 4) is written often enough to be hit by a kill.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from generators.__main__ import main
from generators.training import TrainConfig, run_training

ROOT = Path(__file__).resolve().parents[2]
BATCH = 4
N_IMAGES = 12  # 11 train + 1 test -> 2 full batches of 4 per epoch
STEPS_PER_EPOCH = 2
TINY = {
    "vae": {"base_width": 2, "hidden_dim": 8, "latent_dim": 2},
    "ae": {"base_width": 2, "hidden_dim": 8, "latent_dim": 2},
    "dcgan": {"g_width": 2, "d_width": 2, "latent_dim": 2},
}


def make_image_folder(folder: Path, n: int = N_IMAGES, seed: int = 0, classes: int = 0) -> Path:
    """``n`` seeded grey noise images, 16x16 PNGs; with ``classes``, spread over that many class sub-folders
    (so class-conditional models can train on them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        target = folder / f"class{i % classes}" if classes else folder
        target.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(target / f"{i:02d}.png")
    return folder


def tiny_config(images: Path, **budget) -> TrainConfig:
    return TrainConfig(dataset=f"folder:{images}", image_size=16, channels=1, batch_size=BATCH, **budget)


def train_tiny(images: Path, model: str, run_dir: Path, steps: int, **kwargs) -> dict:
    return run_training(model, TINY[model], tiny_config(images, steps=steps), run_dir, show_progress=False, **kwargs)


def tiny_flags(model: str) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY[model].items()]
    return [model, *flags, "--image-size", "16", "--channels", "1", "--batch-size", str(BATCH), "--quiet"]


def cli_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m generators ARGS`` in a fresh process, exactly as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "generators", *args],
        env=cli_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "generators", *args],
        env=cli_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Wait until ``path`` exists (e.g. the progress file: the training loop is running)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process ended early ({process.returncode}): {process.stderr.read()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def cli_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI's ``main`` in this process (no interpreter start-up); returns (code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, stderr: str, *mentions: str, expected_code: int = 2) -> str:
    """Exit ``expected_code``, exactly one stderr line starting with 'error:', naming every ``mentions``."""
    lines = stderr.strip().splitlines()
    assert code == expected_code, (code, stderr)
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for text in mentions:
        assert str(text).lower() in lines[0].lower(), (text, lines[0])
    return lines[0]


def fork_training(images: Path, model: str, run_dir: Path, steps: int, resume: bool = False) -> tuple[int, int]:
    """Train in a forked child (torch is already imported: no start-up cost). Returns (pid, read end of a pipe
    on which the child writes each step number it finished, one per line)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            torch.set_num_threads(1)  # OpenMP's pool does not survive fork; one thread is what the parent uses too
            report = lambda progress: os.write(write_end, f"{progress['step']}\n".encode())  # noqa: E731
            train_tiny(images, model, run_dir, steps, resume=resume, callback=report)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256), to prove a run folder stayed byte-identical."""
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def hidden_leftovers(out_dir: Path) -> list[str]:
    """Hidden entries beside the runs (a build folder of ``--overwrite`` or a temp file) that were left behind."""
    return sorted(p.name for p in out_dir.iterdir() if p.name.startswith("."))


def poison_vae_steps(monkeypatch, at_step: int, weights: bool) -> None:
    """From VAE step ``at_step`` on: report a NaN loss, or (``weights``) silently fill a weight with NaN."""
    from generators.vae import VAE

    original = VAE.training_step

    def step(self, batch, optimizers):
        logs = original(self, batch, optimizers)
        if int(self.steps_done) >= at_step:
            if weights:
                with torch.no_grad():
                    next(self.parameters()).fill_(math.nan)
            else:
                logs["loss"] = math.nan
        return logs

    monkeypatch.setattr(VAE, "training_step", step)
