"""Pieces shared by the command lines (``python -m generators``, ``python -m evaluation``, benchmarks)."""

from __future__ import annotations

import argparse
import os

from .errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; users get the one line that says what is wrong."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def run_name(text: str) -> str:
    """A run is a folder directly inside --out-dir: a path here could make --overwrite empty any folder."""
    if not text or text in (".", "..") or "/" in text or os.sep in text:
        raise argparse.ArgumentTypeError(f"must be a plain folder name (use --out-dir for the location), got {text!r}")
    return text
