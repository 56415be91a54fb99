"""Run folders on disk: save, load, list and lock them.

``<run>/model.safetensors`` holds the weights and, in its metadata key ``config``, the JSON run info
(model, model config, dataset, image shape, train config, epoch, step, seed, created, code version).
``resume.pt`` holds everything ``--resume`` needs (its own copy of the weights, optimizer and RNG state)
and is only ever read with ``torch.load(weights_only=True)``. Every file is written to a temp file in the
same folder and moved into place with ``os.replace``, so a crash leaves the old file or the new one,
never half of one. Nothing here unpickles anything.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import socket
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from .base import Generator
from .errors import UserError, WriteFailed
from .registry import build_model

WEIGHTS = "model.safetensors"
RESUME = "resume.pt"
HISTORY = "history.csv"
PREVIEW = "preview.png"
LOCK = ".lock"
RUN_FILES = (WEIGHTS, RESUME, HISTORY, PREVIEW, LOCK)  # what training writes; marks a folder as a run folder
TEMP_MARK = ".tmp-"  # in the name of every temp file atomic_write_bytes leaves behind when killed


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + fsync + ``os.replace``; on failure the old file stays.

    A failing write (disk full, no permission) raises ``WriteFailed``: one line for the user, still an OSError.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteFailed):
            raise WriteFailed(
                exc.errno, f"could not write {path} ({exc.strerror or exc}); its previous version, if any, was kept"
            ) from None
        raise


def remove_temp_files(run_dir: Path) -> None:
    """Delete temp files a killed writer left behind; only call it while holding the run's lock."""
    for tmp in Path(run_dir).glob(f".*{TEMP_MARK}*"):
        tmp.unlink(missing_ok=True)


def save_weights(run_dir: Path, state_dict: dict[str, torch.Tensor], info: dict) -> None:
    """``state_dict`` of the model (``model.state_dict()``) with ``info`` as the JSON ``config`` metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(Path(run_dir) / WEIGHTS, save(tensors, metadata={"config": json.dumps(info)}))


def save_resume_state(run_dir: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(run_dir) / RESUME, buffer.getvalue())


def load_resume_state(run_dir: Path) -> dict:
    path = Path(run_dir) / RESUME
    if not path.is_file():
        raise UserError(f"{path} is missing: this run cannot be resumed (train it again with --overwrite)")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; the refusal below says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # objects other than tensors, e.g. a code payload: never executed
        raise UserError(
            f"{path} holds objects other than tensors and was refused unread; "
            f"only resume files written by this project can be resumed"
        ) from None
    except Exception as exc:  # a torn or foreign file
        raise UserError(f"{path} is not a valid resume file and was not loaded: {_first_line(exc)}") from None


class HistoryWriter:
    """Writes ``history.csv`` whole and atomically each time, but formats every row only once.

    Training only appends rows, so each write formats just the rows added since the last one; re-formatting
    all of them (Python work, under the GIL the training thread needs) grew with every epoch of a long run.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / HISTORY
        self.columns: list[str] = []
        self.chunks: list[str] = []  # formatted CSV lines, one chunk per write
        self.rows_written = 0

    def write(self, rows: list[dict]) -> None:
        """``rows``: the whole history so far, the rows of earlier writes first and unchanged."""
        if len(rows) < self.rows_written:  # not a continuation (e.g. cut back): start again
            self.columns, self.chunks, self.rows_written = [], [], 0
        fresh = rows[self.rows_written :]
        added = [k for row in fresh for k in row if k not in self.columns]
        if added:  # a new column changes every line
            self.columns += list(dict.fromkeys(added))
            self.chunks, fresh = [], rows
        lines = io.StringIO()
        csv.DictWriter(lines, fieldnames=self.columns).writerows(fresh)
        self.chunks.append(lines.getvalue())
        self.rows_written = len(rows)
        header = io.StringIO()
        csv.DictWriter(header, fieldnames=self.columns).writeheader()
        atomic_write_bytes(self.path, "".join([header.getvalue(), *self.chunks]).encode())


def write_history(run_dir: Path, rows: list[dict]) -> None:
    HistoryWriter(run_dir).write(rows)


def read_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as fh:
            return [
                {k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in csv.DictReader(fh)
            ]
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(
            f"{path} is not a valid history file ({_first_line(exc)}); delete it to go on without the loss history"
        ) from None


def read_run_info(run_dir: Path) -> dict:
    """The JSON run info stored in the weights file's metadata, without loading any weights."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "does not exist"
        raise UserError(f"run folder {run_dir} {what}")
    path = run_dir / WEIGHTS
    if not path.is_file():
        raise UserError(f"{path} is missing: {run_dir} is not a finished run folder")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
    except Exception as exc:
        raise UserError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    if "config" not in metadata:
        raise UserError(f"{path} has no 'config' metadata: it was not written by this project")
    try:
        info = json.loads(metadata["config"])
        if not (isinstance(info, dict) and isinstance(info["model"], str) and isinstance(info["model_config"], dict)):
            raise TypeError("expected an object with a 'model' name and a 'model_config' object")
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} has an unreadable config in its metadata: {_first_line(exc)}") from None
    return info


def load_run(run_dir: Path, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """Build the model from the stored config and load its weights; say exactly what does not fit."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    path = run_dir / WEIGHTS
    try:
        model = build_model(info["model"], info["model_config"])
    except (UserError, TypeError, ValueError) as exc:  # a hand-edited or foreign config
        raise UserError(
            f"{path}: its config does not describe a model this project can build: {_first_line(exc)}"
        ) from None
    expected = model.state_dict()
    try:
        with safe_open(str(path), framework="pt") as fh:
            stored = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        raise UserError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    stored = model.upgrade_state_dict(stored)
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise UserError(f"{path} does not fit its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, tensor in expected.items():
        if stored[key].shape != tensor.shape:
            raise UserError(
                f"{path}: weight {key!r} has shape {tuple(stored[key].shape)} but the config "
                f"(latent_dim={model.config.latent_dim}, image_shape={model.config.image_shape}) "
                f"needs {tuple(tensor.shape)}"
            )
    model.load_state_dict(stored)
    return model.to(device).eval(), info


def list_runs(out_dir: Path) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Readable runs (their info plus ``run_dir``) and the folders that could not be read, with why."""
    runs, broken = [], []
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return runs, broken
    for run_dir in sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        try:
            info = read_run_info(run_dir)
        except UserError as exc:
            broken.append((run_dir, str(exc)))
            continue
        runs.append({**info, "run_dir": str(run_dir)})
    return runs, broken


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet (a zombie) still answers kill(0) but is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def lock_holder(run_dir: Path) -> str | None:
    """``pid@host`` of the live process training ``run_dir``, or None (no lock, or a dead owner's)."""
    try:
        owner = (Path(run_dir) / LOCK).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    pid_text, _, host = owner.partition("@")
    alive = pid_text.isdigit() and (host != socket.gethostname() or _process_alive(int(pid_text)))
    return owner if alive else None


@contextmanager
def run_lock(run_dir: Path):
    """Hold ``<run>/.lock`` (pid@host) while training; a lock left by a dead process is taken over."""
    path = Path(run_dir) / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            owner = lock_holder(run_dir)
            if owner:
                raise UserError(
                    f"{run_dir} is being trained by process {owner}; wait for it or stop it first"
                ) from None
            path.unlink(missing_ok=True)  # stale lock of a dead process
    else:
        raise UserError(f"could not take the lock {path}; remove it if no training is running")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.getpid()}@{socket.gethostname()}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
