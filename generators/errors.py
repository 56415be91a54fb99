"""One exception type for everything a user can get wrong.

The CLIs turn a ``UserError`` into one line on stderr and exit code 2; the dashboard shows its
message. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a wrong argument, a missing or corrupt file, an unreachable dataset."""


class WriteFailed(UserError, OSError):
    """A file could not be written (disk full, no permission); the previous version of it is intact.

    Also an ``OSError``, so code that already catches write failures keeps working.
    """
