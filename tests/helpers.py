"""Small shared helpers for the tests: tiny configs and a way to run the CLIs as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_BATCH = 32


def tiny_options(model: str, **overrides) -> dict:
    """The one set of tiny test options: each model's own ``tiny`` field metadata (small nets, small z)."""
    from generators.registry import model_class

    return {**model_class(model).Config.tiny_options(), **overrides}


def tiny_train_config(steps: int, **overrides):
    """The one tiny training: ``steps`` steps at batch 32 on the CPU, seed 0 (``overrides``: other TrainConfig
    fields, e.g. ``dataset``)."""
    from generators.train_config import TrainConfig

    return TrainConfig(**{"steps": steps, "batch_size": TINY_BATCH, "device": "cpu", **overrides})


def train_tiny_run(model: str, run_dir: Path, steps: int, *, options: dict | None = None, **config) -> dict:
    """Train ``model`` with its tiny options (``options`` replace some) and the tiny training (``config``
    replaces some of its fields) into ``run_dir``; returns what ``run_training`` returns."""
    from generators.training import run_training

    cfg = tiny_train_config(steps, **config)
    return run_training(model, tiny_options(model, **(options or {})), cfg, run_dir, show_progress=False)


def tiny_flags(model: str, **overrides) -> list[str]:
    """``tiny_options`` as command-line flags."""
    return [
        part
        for key, value in tiny_options(model, **overrides).items()
        for part in (f"--{key.replace('_', '-')}", str(value))
    ]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m ...`` in a subprocess, the way a user types it (``env``: extra environment variables)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *, code: int = 2, mentions: str = "") -> None:
    """Bad input must end with exit 2 and exactly one 'error: ...' line on stderr, never a traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert mentions.lower() in lines[0].lower(), lines[0]
