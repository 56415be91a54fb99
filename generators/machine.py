"""The machine a run trained on, in words: stored in the run's info so that its training seconds can be read
(a methods section names the machine behind every time it quotes)."""

from __future__ import annotations

import os
import platform

import torch


def describe_machine(device: torch.device | None = None) -> str:
    """CPU model, logical cores, the accelerator (the one trained on when ``device`` says so), OS, Python, torch."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    cpu = cpu or platform.processor() or "unknown CPU"
    if torch.cuda.is_available():
        gpu = "GPU " + torch.cuda.get_device_name(0)
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        gpu = "Apple GPU (mps)"
    else:
        gpu = "no GPU"
    trained_on = f", trained on {device.type}" if device is not None else ""
    return (
        f"{cpu} ({platform.machine()}), {os.cpu_count()} logical cores, {gpu}{trained_on}; "
        f"{platform.system()}, Python {platform.python_version()}, torch {torch.__version__}"
    )
