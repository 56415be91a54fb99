"""The limits of every number and name a user or a run file can give, and the checks that hold them.

Each is checked against a documented range (RELIABILITY.md, "Limits"): NaN and infinity fail ``<= 0`` tests, and
sizes without an upper bound hang or die in the allocator. ``checked_int``/``checked_float`` check a value (a model
config, a run file); ``int_in``, ``float_in``, ``seed_int`` and ``run_name`` are the command lines' argparse types.
"""

from __future__ import annotations

import argparse
import math
import os

from .errors import UserError

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes 64 bits; numpy's default_rng any non-negative int
MAX_SAMPLES = 1_000_000  # --n of sample and evaluation
MAX_BATCH_SIZE = 65_536
MAX_STEPS = 10**9
MAX_EPOCHS = 10**6
MAX_MINUTES = 10**6  # about two years
MAX_RUN_NAME = 200
# Bytes of a run folder's name, suffixes such as "-s<seed>" included: file systems allow 255 bytes, and the hidden
# sibling an --overwrite builds in (".<name>.new-<pid>") adds up to 19 more.
MAX_RUN_NAME_BYTES = 200
MAX_CLASSES = 1000  # classes of a class-conditional model (the CVAE's one-hot planes grow with classes x H x W)
MAX_LABEL_PLANES = 2**28  # batch x classes x H x W values of those planes (1 GiB of float32) in one training batch


def checked_int(flag: str, value, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool) in ``[low, high]``; otherwise a ``UserError`` naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{flag} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise UserError(f"{flag} must be between {low} and {high}, got {value}")
    return value


def checked_float(flag: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """``value`` as a float if it is a finite number in the range (``low_open``/``high_open``: ends excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{flag} must be a number, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        where = f" in {left}{low:g}, {high:g}{right}" if math.isfinite(low) or math.isfinite(high) else ""
        raise UserError(f"{flag} must be a finite number{where}, got {value}")
    return value


def _argument_type(check, name: str):
    """An argparse type from a checker: argparse names the option in its one-line error."""

    def parse(text: str):
        try:
            return check(text)
        except (ValueError, UserError) as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("value ", "")) from None

    parse.__name__ = name
    return parse


def int_in(low: int, high: int):
    """argparse type: a whole number in ``[low, high]``."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            if low == 1:
                raise ValueError(f"must be a positive integer (at most {high}), got {text}")
            raise ValueError(f"must be between {low} and {high}, got {text}")
        return value

    return _argument_type(check, "int")


def float_in(low: float, high: float, *, low_open: bool = True):
    """argparse type: a finite number in ``(low, high]`` (``low_open=False``: ``[low, high]``)."""

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number, got {text!r}") from None
        if low == 0 and low_open and not (math.isfinite(value) and 0 < value <= high):
            raise ValueError(f"must be positive and finite (at most {high:g}), got {text}")
        return checked_float("value", value, low, high, low_open=low_open)

    return _argument_type(check, "float")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


seed_int = int_in(0, MAX_SEED)


def has_control_characters(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a hostile name cannot break a table or a terminal."""
    return text if not has_control_characters(text) else text.encode("unicode_escape").decode("ascii")


def run_name(text: str) -> str:
    """A run is a folder directly inside --out-dir: a path here could make --overwrite empty any folder."""
    if not text or text in (".", "..") or "/" in text or os.sep in text:
        raise argparse.ArgumentTypeError(f"must be a plain folder name (use --out-dir for the location), got {text!r}")
    if has_control_characters(text) or len(text) > MAX_RUN_NAME:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_RUN_NAME} characters without control characters (newline, tab…), got {text!r}"
        )
    check_name_bytes(text)
    return text


def check_name_bytes(name: str, flag: str = "--run") -> None:
    """A folder name is limited in bytes, not characters (a CJK character is 3 bytes in UTF-8)."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_RUN_NAME_BYTES:
        raise UserError(
            f"{flag}: the folder name {printable(name[:40])}… is {size} bytes; at most {MAX_RUN_NAME_BYTES} bytes "
            "(suffixes such as -s<seed> included) fit a file name"
        )
