"""The machine a run trains on: the device it picks (``choose_device``) and the machine in words, stored in the
run's info so that its training seconds can be read (a methods section names the machine behind every time it
quotes)."""

from __future__ import annotations

import os
import platform
import re

import torch

from .errors import UserError


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


DEVICE_NAME = re.compile(r"(cpu|cuda|mps)(:\d{1,3})?")


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU. Other device types (``meta``, ``xla``…) cannot train a model
    here and are refused by name, before a run folder is made."""
    if name != "auto":
        if not DEVICE_NAME.fullmatch(name):
            raise UserError(f"device {name!r} is not supported: use auto, cpu, cuda, cuda:N or mps")
        try:
            device = torch.device(name)
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as exc:
            raise UserError(f"device {name!r} is not usable here: {str(exc).splitlines()[0]}") from None
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
