"""ddp_scaling: images/s of ``torchrun --nproc_per_node 2`` divided by images/s of one process, one thread each.

Per registered model, the same command (default model options, mnist5k, global batch ``BATCH``, ``STEPS`` steps)
runs once as ``python -m generators train`` and once under torchrun with 2 processes (gloo), with
OMP_NUM_THREADS=1 in every process so that 2 processes use 2 cores against 1. The figure of each run is the
harness's own images/s for the session (first step to last, DataLoader and epoch checkpoints included; process
start-up, imports and the rendezvous excluded), read from its final ``--progress-json``. The two runs take turns
for ``ROUNDS`` rounds, and the ratio is the median of the rounds, so load from elsewhere hits both alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from generators.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
BATCH = 128  # the CLI's default global batch: 64 per process with 2
STEPS = 40  # past the first epoch checkpoint (35 steps of 128 on mnist5k's 4 500 training images)
ROUNDS = 3


def images_per_second(name: str, processes: int) -> float:
    """The harness's images/s for ``STEPS`` steps of ``name`` with ``processes`` processes of one thread each."""
    with tempfile.TemporaryDirectory() as tmp:
        progress = Path(tmp) / "progress.json"
        command = ["-m", "generators", "train", name, "--steps", str(STEPS), "--batch-size", str(BATCH)]
        command += ["--device", "cpu", "--out-dir", tmp, "--run-name", "bench", "--quiet"]
        command += ["--progress-json", str(progress)]
        launcher = [sys.executable]
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        subprocess.run(launcher + command, cwd=ROOT, env=env, check=True, capture_output=True)
        return json.loads(progress.read_text())["img_per_s"]


def ddp_figures() -> dict:
    ratios, setup = {}, {"batch_size": BATCH, "steps": STEPS, "rounds": ROUNDS, "threads_per_process": 1}
    for name in MODELS:
        rounds = [(images_per_second(name, 1), images_per_second(name, 2)) for _ in range(ROUNDS)]
        ratios[name] = round(statistics.median(two / one for one, two in rounds), 3)
        setup[name] = {"img_per_s_1_process": [round(one, 1) for one, _ in rounds]}
        setup[name]["img_per_s_2_processes"] = [round(two, 1) for _, two in rounds]
    return {"ddp_scaling": ratios, "ddp_setup": setup}
