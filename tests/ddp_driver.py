"""torchrun entry point of tests/test_distributed.py: several ``python -m generators`` commands in the same
processes (every torchrun launch pays seconds of imports per process), recording what each rank trains on and
injecting a fault into one rank.

    torchrun --standalone --nproc_per_node 2 tests/ddp_driver.py PLAN.json

PLAN: ``{"record_dir": DIR, "commands": [{"tag": T, "argv": [...], "fault": null | {"kind": "nan" | "raise" |
"sigterm", "rank": R, "step": S}}, ...]}``. Every command runs through ``generators.__main__.main`` exactly as typed
after ``-m generators``; its exit code goes to ``DIR/T.rank<R>.exit`` and the fingerprint of every image of
every step to one line of ``DIR/T.rank<R>.jsonl``. The process group is made once here and used by every
command, as a notebook or a script that calls the harness under torchrun would.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import torch

from generators.__main__ import main
from generators.registry import MODELS

RANK = int(os.environ.get("RANK", "0"))
NOW = {"tag": "", "fault": None, "steps": 0, "record_dir": Path(".")}


def fingerprint(image: torch.Tensor) -> str:
    return hashlib.sha1(image.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def recorded(training_step):
    """``training_step`` that first records its images and, at the planned step of the planned rank, breaks:
    a NaN batch (the loss becomes NaN on that rank alone), an exception, or a SIGTERM to that rank alone."""

    def step(self, batch, optimizers):
        NOW["steps"] += 1
        fault = NOW["fault"]
        if fault and fault["rank"] == RANK and fault["step"] == NOW["steps"]:
            if fault["kind"] == "raise":
                raise RuntimeError("injected fault")
            if fault["kind"] == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                batch = (batch[0] * float("nan"), batch[1])
        with open(NOW["record_dir"] / f"{NOW['tag']}.rank{RANK}.jsonl", "a") as fh:
            fh.write(json.dumps([fingerprint(image) for image in batch[0]]) + "\n")
        return training_step(self, batch, optimizers)

    return step


def run(plan: dict) -> None:
    torch.distributed.init_process_group("gloo")  # one group for every command (the harness joins it, keeps it)
    for cls in MODELS.values():
        if "training_step" in vars(cls):
            cls.training_step = recorded(cls.training_step)
    NOW["record_dir"] = Path(plan["record_dir"])
    for command in plan["commands"]:
        NOW.update(tag=command["tag"], fault=command.get("fault"), steps=0)
        code = main(command["argv"])
        (NOW["record_dir"] / f"{command['tag']}.rank{RANK}.exit").write_text(str(code))
    # leave together: a rank whose peer has exited can be aborted by gloo (SIGABRT) before it records its code
    try:
        torch.distributed.monitored_barrier(timeout=datetime.timedelta(seconds=60))
    except RuntimeError:
        pass  # the peer is gone (a planned fault ended it); nothing left to wait for
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
