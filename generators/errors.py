"""One exception type for everything a user can get wrong, and the pieces that make every mistake one line.

The CLIs turn a ``UserError`` into one line on stderr and exit code 2 (``run_command``); the dashboard
shows its message. Anything else is a bug and keeps its traceback. ``OneLineParser`` (argparse's errors) and
``out_of_memory_hint`` (the allocator giving up) turn two more kinds of failure into a ``UserError``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import contextmanager

EXIT_BAD_INPUT = 2
EXIT_CTRL_C = 130


class UserError(Exception):
    """Bad input: a wrong argument, a missing or corrupt file, an unreachable dataset."""


class WriteFailed(UserError, OSError):
    """A file could not be written (disk full, no permission); the previous version of it is intact.

    Also an ``OSError``, so code that already catches write failures keeps working.
    """


def run_command(command: Callable[[], int]) -> int:
    """The exit code of a CLI command: bad input -> one 'error: ...' line on stderr and 2; Ctrl-C -> 130."""
    try:
        return command()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_CTRL_C


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; users get the one line that says what is wrong. Abbreviations are
    off: ``--extractor`` must never be read as ``--extractor-dir``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see --help)")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the allocator giving up (Python's MemoryError, torch's CPU or CUDA allocator)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text
        for mark in ("can't allocate memory", "Cannot allocate memory", "out of memory", "DefaultCPUAllocator")
    )


@contextmanager
def out_of_memory_hint(what: str, advice: str):
    """Turn running out of memory inside the block into one line saying what to do (which option to lower)."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise UserError(f"out of memory while {what}: {advice}") from None
