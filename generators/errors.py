"""One exception type for everything a user can get wrong.

The CLIs turn a ``UserError`` into one line on stderr and exit code 2 (``run_command``); the dashboard
shows its message. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

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
