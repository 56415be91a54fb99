"""Run folders on disk: save, load, list and lock them.

``<run>/model.safetensors`` holds the weights and, in its metadata key ``config``, the JSON run info
(model, model config, dataset, image shape, train config, epoch, step, seed, created, code version).
``resume.pt`` holds everything ``--resume`` needs (its own copy of the weights, optimizer and RNG state)
and is only ever read with ``torch.load(weights_only=True)``. Every file is written to a temp file in the
same folder and moved into place with ``os.replace``, so a crash leaves the old file or the new one,
never half of one. Nothing here unpickles anything.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import pickle
import socket
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from safetensors import safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save

from .base import Generator, ModelConfig
from .errors import UserError, WriteFailed
from .limits import MAX_CLASSES, MAX_SEED, MAX_STEPS
from .registry import model_class
from .train_config import TrainConfig

WEIGHTS = "model.safetensors"
RESUME = "resume.pt"
HISTORY = "history.csv"
PREVIEW = "preview.png"
LOCK = ".lock"
RUN_FILES = (WEIGHTS, RESUME, HISTORY, PREVIEW, LOCK)  # what training writes; marks a folder as a run folder
TEMP_MARK = ".tmp-"  # in the name of every temp file atomic_write_bytes leaves behind when killed
RUN_MARKERS = (WEIGHTS, RESUME, LOCK)  # a folder holding any of these is a run folder (finished, resumable or live)
# written beside the run by evaluation; samplers are sampler_*.safetensors
OTHER_RUN_FILES = ("metrics.json", "augmentation.json", "compression.json")

# Size bounds of the files a run folder holds: every one of them may be hostile (a classmate's run folder).
MAX_WEIGHTS_BYTES = 2 * 1024**3
MAX_RESUME_BYTES = 4 * 1024**3  # weights + two Adam moments
MAX_HISTORY_BYTES = 256 * 1024**2
MAX_CONFIG_BYTES = 1024**2  # the JSON run info in the weights' metadata
MAX_LOCK_BYTES = 4096
MAX_JSON_BYTES = 64 * 1024**2  # metrics.json and other JSON files of a run
MAX_PARAMETERS = 100_000_000  # 400 MB of float32 weights; the default runs have about 2 million


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a run folder: it holds weights, a resume file or a run lock (even a broken link)."""
    folder = Path(folder)
    return folder.is_dir() and any(os.path.lexists(folder / name) for name in RUN_MARKERS)


def run_owns(name: str) -> bool:
    """Whether a file called ``name`` inside a run folder is one of the run's own files."""
    return (
        name in RUN_FILES
        or name in OTHER_RUN_FILES
        or (name.startswith("sampler_") and name.endswith(".safetensors"))
        or TEMP_MARK in name
    )


def check_regular_file(path: Path, max_bytes: int) -> os.stat_result:
    """Refuse anything but a regular file of at most ``max_bytes`` (a symlink to /dev/zero, a FIFO, a folder)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path} is not a regular file (a folder, a device or a pipe?) and was not read")
    if info.st_size > max_bytes:
        raise UserError(f"{path} is {info.st_size / 1e6:.1f} MB, more than the {max_bytes / 1e6:.0f} MB allowed")
    return info


def _read_upto(fh, first: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``fh``: ``first`` in one read (the expected size), then, for a file that grew,
    bounded chunks until the end or the limit."""
    chunks, total = [], 0
    want = first
    while total < limit:
        size = min(want, limit - total)
        chunk = fh.read(size)
        chunks.append(chunk)
        total += len(chunk)
        if len(chunk) < size:  # a short read of a regular file: its end
            break
        want = 1 << 20
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; otherwise one-line ``UserError``.

    Opened with O_NONBLOCK and checked again on the open descriptor, so a FIFO swapped in after the check never
    blocks, and read up to the bound only (a file that grows past it is refused)."""
    check_regular_file(path, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path} is not a regular file and was not read")
        try:  # a buffer of the file's size, not of the bound: read(2 GiB) allocates 2 GiB even for a small file
            data = _read_upto(fh, min(info.st_size, max_bytes) + 1, max_bytes + 1)
        except OSError as exc:
            raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise UserError(f"{path} is larger than the {max_bytes / 1e6:.0f} MB allowed")
    return data


def file_sha256(path: Path, chunk: int = 1 << 20) -> str | None:
    """The sha256 (hex) of a regular file, None for anything else or an unreadable one: opened without blocking
    and checked on the descriptor, so a FIFO or a link to /dev/zero is never read."""
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            while block := fh.read(chunk):
                digest.update(block)
        except OSError:
            return None
    return digest.hexdigest()


def read_json_file(path: Path, max_bytes: int = MAX_JSON_BYTES):
    """The JSON in ``path`` (e.g. a run's ``metrics.json``): a regular file of at most ``max_bytes``, valid UTF-8
    JSON nested less than Python's recursion limit; anything else is a one-line ``UserError`` naming the file.
    The caller still checks the shape of what it gets."""
    data = read_regular_file(path, max_bytes)
    try:
        return json.loads(data.decode())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{path} is not valid JSON: {_first_line(exc)}") from None


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
        left = ""
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # the cleanup failed too: say so, but report the first failure
            left = f"; the temp file {tmp} could not be removed"
        if isinstance(exc, OSError) and not isinstance(exc, WriteFailed):
            raise WriteFailed(
                exc.errno,
                f"could not write {path} ({exc.strerror or exc}); its previous version, if any, was kept{left}",
            ) from None
        raise


def remove_temp_files(run_dir: Path) -> None:
    """Delete temp files a killed writer left behind; only call it while holding the run's lock."""
    for tmp in Path(run_dir).glob(f".*{TEMP_MARK}*"):
        with contextlib.suppress(OSError):  # garbage either way; a read-only folder keeps it
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
    """``resume.pt`` as plain tensors and containers (never unpickled otherwise); the harness then checks that
    it fits the model (``generators.run_folder.check_resume_state``)."""
    path = Path(run_dir) / RESUME
    if not path.exists():
        raise UserError(f"{path} is missing: this run cannot be resumed (train it again with --overwrite)")
    data = read_regular_file(path, MAX_RESUME_BYTES)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; the refusal below says it all
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # objects other than tensors, e.g. a code payload: never executed
        raise UserError(
            f"{path} holds objects other than tensors and was refused unread; "
            f"only resume files written by this project can be resumed"
        ) from None
    except Exception as exc:  # a torn or foreign file
        raise UserError(f"{path} is not a valid resume file and was not loaded: {_first_line(exc)}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a valid resume file: it holds a {type(state).__name__}, not a dict")
    return state


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
    if not path.exists():
        return []
    text = read_regular_file(path, MAX_HISTORY_BYTES)
    try:
        return [
            {k: float(v) if v not in ("", None) else None for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text.decode(), newline=""))
        ]
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(
            f"{path} is not a valid history file ({_first_line(exc)}); delete it to go on without the loss history"
        ) from None


Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None


class RunInfoSchema(BaseModel):
    """What ``model.safetensors``'s ``config`` metadata must look like before any of it is used: flat configs of
    scalars, bounded sizes and counters. The model's own config class then checks its fields' types and ranges.
    Keys added by newer code are allowed (the JSON is already bounded in size)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: StrictStr = Field(min_length=1, max_length=100)
    architecture: dict[StrictStr, Scalar | list[StrictInt]] = Field(alias="model_config", max_length=100)
    dataset: StrictStr = Field(min_length=1, max_length=4096)
    image_shape: list[StrictInt] | None = Field(default=None, min_length=3, max_length=3)
    class_names: list[Annotated[StrictStr, Field(max_length=200)]] | None = Field(default=None, max_length=100_000)
    train_config: dict[StrictStr, Scalar | Annotated[list[StrictInt], Field(max_length=MAX_CLASSES)]] = Field(
        default_factory=dict, max_length=100
    )  # lists: --exclude-classes
    seed: StrictInt = Field(default=0, ge=0, le=MAX_SEED)
    step: StrictInt = Field(default=0, ge=0, le=MAX_STEPS)
    epoch: StrictInt = Field(default=0, ge=0, le=MAX_STEPS)
    seconds: StrictFloat | StrictInt = Field(default=0.0, ge=0, le=1e12)
    created: StrictStr = Field(default="", max_length=100)
    code_version: StrictStr = Field(default="", max_length=100)
    machine: StrictStr = Field(default="", max_length=500)


def validate_run_info(info, where: Path) -> dict:
    """``info`` (parsed JSON of unknown shape) if it describes a run this project can build; else a ``UserError``.

    Checked against ``RunInfoSchema``, then by the model's config class (types and limits, e.g. a latent size of
    10**9 is refused here, before anything is built) and by ``TrainConfig``."""
    try:
        RunInfoSchema.model_validate(info)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "config"
        raise UserError(f"{where} has an invalid run config: {field}: {error['msg']}") from None
    try:
        cls = model_class(info["model"])
        config = cls.Config.from_dict(info["model_config"])
        TrainConfig(**info.get("train_config", {}))
    except (UserError, TypeError, ValueError) as exc:
        raise UserError(
            f"{where}: its config does not describe a run this project can build: {_first_line(exc)}"
        ) from None
    if info.get("image_shape") is not None and list(config.image_shape) != info["image_shape"]:
        raise UserError(f"{where}: image_shape {info['image_shape']} differs from the model's {config.image_shape}")
    classes, names = getattr(config, "num_classes", None), info.get("class_names")
    if classes is not None:
        if not 1 <= classes <= MAX_CLASSES:
            raise UserError(f"{where}: num_classes {classes} is out of range (1 to {MAX_CLASSES})")
        if names is not None and len(names) != classes:
            raise UserError(
                f"{where}: its class_names list {len(names)} names but the model has num_classes={classes}; "
                "the run's metadata contradicts itself"
            )
    return info


def checked_config(name: str, config: dict | ModelConfig) -> ModelConfig:
    """The model's config, validated, after counting its parameters on the meta device (no memory): a config
    with huge widths is refused in a millisecond instead of exhausting memory."""
    cls = model_class(name)
    config = cls.Config.from_dict(config) if isinstance(config, dict) else config
    with torch.device("meta"):
        count = sum(p.numel() for p in cls(config).parameters())
    if count > MAX_PARAMETERS:
        raise UserError(
            f"this {cls.title} would have {count:,} parameters, more than the {MAX_PARAMETERS:,} allowed: "
            f"use smaller widths or latent size"
        )
    return config


def build_checked(name: str, config: dict | ModelConfig) -> Generator:
    """Build a model once ``checked_config`` accepts it."""
    return model_class(name)(checked_config(name, config))


def read_run_info(run_dir: Path) -> dict:
    """The JSON run info stored in the weights file's metadata, validated, without loading any weights."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "does not exist"
        raise UserError(f"run folder {run_dir} {what}")
    path = run_dir / WEIGHTS
    if not path.exists():
        raise UserError(f"{path} is missing: {run_dir} is not a finished run folder")
    check_regular_file(path, MAX_WEIGHTS_BYTES)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
    except Exception as exc:
        raise UserError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    if "config" not in metadata:
        raise UserError(f"{path} has no 'config' metadata: it was not written by this project")
    if len(metadata["config"]) > MAX_CONFIG_BYTES:
        raise UserError(f"{path} has a config of {len(metadata['config'])} characters; at most {MAX_CONFIG_BYTES}")
    try:
        info = json.loads(metadata["config"])
        if not (isinstance(info, dict) and isinstance(info.get("model"), str) and "model_config" in info):
            raise TypeError("expected an object with a 'model' name and a 'model_config' object")
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise UserError(f"{path} has an unreadable config in its metadata: {_first_line(exc)}") from None
    return validate_run_info(info, path)


def load_run(run_dir: Path, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """Build the model from the stored config and load its weights; say exactly what does not fit."""
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    path = run_dir / WEIGHTS
    model = build_checked(info["model"], info["model_config"])
    expected = model.state_dict()
    data = read_regular_file(path, MAX_WEIGHTS_BYTES)
    try:
        stored = load_safetensors(data)
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
        if stored[key].is_floating_point() != tensor.is_floating_point():
            raise UserError(f"{path}: weight {key!r} is {stored[key].dtype}, not {tensor.dtype}")
    model.load_state_dict(stored)
    return model.to(device).eval(), info


def list_runs(out_dir: Path) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Readable runs (their info plus ``run_dir``) and the folders that could not be read, with why. A run being
    started (a live lock, no weights yet) is neither: it is left out until its first checkpoint."""
    runs, broken = [], []
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return runs, broken
    for run_dir in sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        try:
            info = read_run_info(run_dir)
        except Exception as exc:  # one bad run never hides the good ones
            if not os.path.lexists(run_dir / WEIGHTS) and lock_holder(run_dir):
                continue
            broken.append((run_dir, str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"))
            continue
        runs.append({**info, "run_dir": str(run_dir)})
    return runs, broken


def process_alive(pid: int) -> bool:
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
        owner = read_regular_file(Path(run_dir) / LOCK, MAX_LOCK_BYTES).decode().strip()
    except (UserError, UnicodeDecodeError):
        return None
    pid_text, _, host = owner.partition("@")
    alive = pid_text.isdigit() and (host != socket.gethostname() or process_alive(int(pid_text)))
    return owner if alive else None


def _remove_stale_lock(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path} is a folder, not a lock file; remove it if no training is running")
    try:
        path.unlink(missing_ok=True)  # a dead process's lock, or a FIFO/symlink planted as one
    except OSError as exc:
        raise UserError(f"could not remove the stale lock {path} ({exc.strerror or exc})") from None


def release_lock(run_dir: Path) -> None:
    """Remove ``<run>/.lock`` if this process holds it. A failure leaves the lock of a process that is about to
    end, which the next trainer takes over (see ``run_lock``), so it is not reported."""
    path = Path(run_dir) / LOCK
    with contextlib.suppress(OSError, UserError, UnicodeDecodeError):
        if read_regular_file(path, MAX_LOCK_BYTES).decode().strip() == f"{os.getpid()}@{socket.gethostname()}":
            path.unlink()


@contextmanager
def run_lock(run_dir: Path):
    """Hold ``<run>/.lock`` (pid@host) while training; a lock left by a dead process is taken over.

    A folder that cannot be written (read-only, disk full) gives one line and leaves no lock behind."""
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
            _remove_stale_lock(path)
        except OSError as exc:
            raise UserError(f"cannot take the lock {path} ({exc.strerror or exc}); is the folder writable?") from None
    else:
        raise UserError(f"could not take the lock {path}; remove it if no training is running")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}@{socket.gethostname()}")
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise UserError(f"cannot write the lock {path} ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        release_lock(run_dir)
