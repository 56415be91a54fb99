"""Files a user names for output (tables, progress, samples): checked once, the same way, by every command.

An output path may never destroy something else:

- it is never a file inside a run folder (``generators.checkpoints.is_run_folder``): a table written over
  ``model.safetensors`` or ``history.csv`` would lose the run; the one exception is a progress file in the run
  the same command trains (the dashboard's layout), and even there none of the names the run itself uses;
- an existing file is replaced only when it is of the output's own kind (its extension, if any, is one of the
  kind's, and its first bytes look like it: JSON, text, a ``.npy`` array), unless the command is given ``--force``;
- the same path named twice in one command is refused (the second write would silently replace the first);
- special files (a FIFO, a device), folders and missing parent folders are refused.

Every refusal is a one-line ``UserError`` (exit 2) naming the option and the path.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .checkpoints import is_run_folder, run_owns
from .errors import UserError

SNIFF_BYTES = 64 * 1024

# kind -> the extensions a file of that kind may have (a file without an extension is judged by its content)
KIND_EXTENSIONS = {
    "json": (".json",),
    "csv": (".csv",),
    "markdown": (".md", ".markdown", ".txt"),
    "latex": (".tex", ".latex"),
    "npy": (".npy",),
    "zip": (".zip",),
}
KIND_NAMES = {
    "json": "JSON",
    "csv": "CSV",
    "markdown": "Markdown",
    "latex": "LaTeX",
    "npy": ".npy array",
    "zip": "zip archive",
}


@dataclass(frozen=True)
class Output:
    """One output the command will write: the option that named it (for the message), the path, its kind."""

    flag: str
    path: Path
    kind: str


def _first_bytes(path: Path) -> bytes | None:
    """Up to ``SNIFF_BYTES`` of a regular file (None if it cannot be read); a FIFO is never blocked on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        try:
            return fh.read(SNIFF_BYTES)
        except OSError:
            return None


def _is_text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    try:  # incremental: a multi-byte character cut at the end of the sniffed bytes is fine
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def looks_like(data: bytes, kind: str) -> bool:
    """Whether the first bytes of a file are those of a file of ``kind`` (an empty file is of every kind)."""
    if not data:
        return True
    if kind == "npy":
        return data.startswith(b"\x93NUMPY")
    if kind == "zip":
        return data.startswith((b"PK\x03\x04", b"PK\x05\x06"))  # a zip's first entry, or an empty zip
    if not _is_text(data):
        return False
    if kind == "json":
        return data.lstrip()[:1] in (b"{", b"[", b"")
    return True


def is_own_kind(path: Path, kind: str) -> bool:
    """Whether the existing file ``path`` may be replaced by an output of ``kind`` without ``--force``."""
    suffix = path.suffix.lower()
    if suffix and suffix not in KIND_EXTENSIONS[kind]:
        return False
    data = _first_bytes(path)
    return data is not None and looks_like(data, kind)


def check_outputs(outputs: list[Output], *, force: bool = False, own_run: Path | None = None) -> list[Path]:
    """Refuse, before anything is computed, every output that would destroy something (see the module doc).

    ``own_run``: the run folder the command itself trains (``train --progress-json`` may write there, but not over
    one of the run's own files). Returns the paths, in order."""
    seen: dict[str, Output] = {}
    for out in outputs:
        path = Path(out.path)
        flag = out.flag
        if path.is_dir():
            raise UserError(f"{flag} {path} is a folder; give a file name")
        in_own_run = own_run is not None and path.parent.resolve() == Path(own_run).resolve()
        if not (path.parent.is_dir() or in_own_run):
            raise UserError(f"the folder of {flag} ({path.parent}) does not exist")
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise UserError(f"{flag} {path} is not a regular file (a device, a pipe or a broken link?)")
        real = Path(os.path.realpath(path))
        for folder in dict.fromkeys((path.parent, real.parent)):
            if in_own_run and folder.resolve() == Path(own_run).resolve():
                if run_owns(path.name) or run_owns(real.name):
                    raise UserError(f"{flag} {path} is one of the run's own files; write it under another name")
                continue
            if is_run_folder(folder):
                raise UserError(
                    f"{flag} {path} is inside the run folder {folder}; a run's files are never written over, "
                    "so write it outside run folders"
                )
        key = str(real)
        if key in seen:
            raise UserError(f"{seen[key].flag} and {flag} name the same file {path}; give each its own file")
        seen[key] = out
        if path.is_file() and not force and not is_own_kind(path, out.kind):
            raise UserError(
                f"{flag} {path} already exists and is not a {KIND_NAMES[out.kind]} file; it was not replaced "
                "(add --force to replace it)"
            )
    return [Path(out.path) for out in outputs]
