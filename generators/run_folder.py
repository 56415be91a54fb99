"""The run folder around a training run: what may be trained into it (``check_folder``, ``prepare_run_dir``),
what a ``--resume`` keeps of the stored run and whether its ``resume.pt`` fits (``resumed_settings``,
``check_resume_state``), and ``--overwrite``, which builds the new run in a hidden sibling folder and swaps it in
at its first good checkpoint (``SwapInWriter``, ``replace_run``). Nothing here trains: the loop is
``generators/trainer.py``."""

from __future__ import annotations

import ctypes
import glob
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from .checkpoints import HISTORY, LOCK, RUN_FILES, TEMP_MARK, WEIGHTS, lock_holder, process_alive, run_lock
from .errors import UserError
from .limits import MAX_STEPS
from .train_config import OPTIONAL_FIELDS, SUBSET_FIELDS, TrainConfig
from .trainer import CheckpointWriter, Diverged, Trainer, first_non_finite


def check_resume_options(model_options: dict, stored: dict, run_dir: Path) -> None:
    """A resumed run keeps the architecture and losses it was created with; a different value is refused."""
    for name, value in model_options.items():
        if name in stored and name != "image_shape" and stored[name] != value:
            raise UserError(
                f"{run_dir} was trained with --{name.replace('_', '-')} {stored[name]}, not {value}; "
                f"a resumed run keeps its settings (drop the option, or train a new --run)"
            )


def resumed_settings(
    stored: dict, model_name: str, model_options: dict, cfg: TrainConfig, run_dir: Path
) -> tuple[dict, TrainConfig]:
    """The model options and config a ``--resume`` of the run that ``stored`` describes trains with: the run keeps
    its model, architecture and data (a different value given is refused); the budget is the command's, else the
    stored one (the same command finishes the run); precision and compilation are how a session computes, not what
    the run is: the command's, else stored."""
    if stored["model"] != model_name:
        raise UserError(f"{run_dir} holds a {stored['model']} run, not {model_name}")
    check_resume_options(model_options, stored["model_config"], run_dir)
    for key in OPTIONAL_FIELDS:  # the run keeps the images it was trained on, and its learning-rate schedule
        given, kept = getattr(cfg, key), stored["train_config"].get(key)
        if given is not None and given != kept:
            flag = "--" + key.replace("_", "-")
            kept_what = "its data" if key in SUBSET_FIELDS else "its learning-rate schedule"
            raise UserError(f"{run_dir} was trained with {flag} {kept}, not {given}; a resumed run keeps {kept_what}")
    budget = {k: getattr(cfg, k) for k in ("epochs", "steps", "minutes")}
    if all(v is None for v in budget.values()):
        budget = {k: stored["train_config"].get(k) for k in budget}
    speed = {k: getattr(cfg, k) for k in ("precision", "compile") if getattr(cfg, k) is not None}
    return stored["model_config"], TrainConfig(**{**stored["train_config"], **budget, "device": cfg.device, **speed})


def check_resume_state(state: dict, trainer: Trainer, path: Path) -> None:
    """Refuse a ``resume.pt`` whose contents do not fit the model and run (an untrusted file): counters that are
    not integers or out of range, non-finite weights, optimizer states of other shapes or with NaN settings.
    Key names and weight shapes are checked again by ``Trainer.resume_from``."""

    def refuse(why: str):
        raise UserError(f"{path} does not fit this model or run: {why}")

    counters = {"step": (0, MAX_STEPS), "epoch": (0, MAX_STEPS), "batch_in_epoch": (0, trainer.steps_per_epoch)}
    for key, (low, high) in counters.items():
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            refuse(f"{key} is {value!r:.40}, not a whole number in [{low}, {high}]")
    if state["epoch"] > state["step"]:
        refuse(f"epoch {state['epoch']} is past step {state['step']}")
    scaler = state.get("grad_scaler", {})
    scale = scaler.get("scale", 1.0) if isinstance(scaler, dict) else None
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        refuse(f"its fp16 loss scale is {scale!r:.40}, not a positive finite number")
    seconds = state.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 1e12:
        refuse(f"seconds is {seconds!r:.40}, not a finite number of seconds")
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        refuse("'model' is not a dict of tensors")
    if (bad := first_non_finite(weights)) is not None:
        refuse(f"weight {bad} is NaN or infinite")
    upgraded = trainer.model.upgrade_state_dict(weights)
    for key, tensor in trainer.model.state_dict().items():
        if key not in upgraded or upgraded[key].shape != tensor.shape:
            found = tuple(upgraded[key].shape) if key in upgraded else "missing"
            refuse(f"weight {key} has size {found}, the model needs {tuple(tensor.shape)}")
    stored = state.get("optimizers")
    if not isinstance(stored, dict) or set(stored) != set(trainer.optimizers):
        refuse(f"it has optimizers {sorted(stored) if isinstance(stored, dict) else stored!r:.60}")
    for name, optimizer in trainer.optimizers.items():
        params = [p for group in optimizer.param_groups for p in group["params"]]
        groups, per_param = stored[name].get("param_groups"), stored[name].get("state")
        if not isinstance(groups, list) or not isinstance(per_param, dict):
            refuse(f"optimizer {name!r} is not an optimizer state")
        for group in groups:
            numbers = [group.get("lr"), *(group.get("betas") or ())]
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
                refuse(f"optimizer {name!r} has settings {numbers!r:.80}")
        for index, values in per_param.items():
            if not (isinstance(index, int) and 0 <= index < len(params) and isinstance(values, dict)):
                refuse(f"optimizer {name!r} has state for parameter {index!r:.40}, which does not exist")
            for key, value in values.items():
                if not isinstance(value, torch.Tensor) or (value.ndim and value.shape != params[index].shape):
                    refuse(f"optimizer {name!r}: {key} of parameter {index} does not fit its shape")


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse what would lose or clobber work; reads only."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run folder: pick another --run or --out-dir")
    owner = lock_holder(run_dir)
    if owner:
        raise UserError(f"{run_dir} is being trained by process {owner}; wait for it or stop it first")
    try:
        entries = [p.name for p in run_dir.iterdir()] if run_dir.is_dir() else []
    except OSError as exc:
        raise UserError(f"cannot read the run folder {run_dir} ({exc.strerror or exc})") from None
    exists = any(name != LOCK for name in entries)
    if exists and not (resume or overwrite):
        raise UserError(f"run folder {run_dir} already exists: pick another --run, or add --resume or --overwrite")
    if resume and not (run_dir / WEIGHTS).is_file():
        hint = " (it never reached its first checkpoint: use --overwrite)" if exists else ""
        raise UserError(f"nothing to resume: {run_dir / WEIGHTS} does not exist{hint}")
    if overwrite and exists and not any(name in RUN_FILES or TEMP_MARK in name for name in entries):
        raise UserError(
            f"{run_dir} holds files but is not a run folder; --overwrite would delete them, so pick another --run"
        )


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> bool:
    """Refuse what would lose or clobber work, before anything is written; then make the folder.

    Returns whether the folder was made here (so a run that fails before its first file can remove it)."""
    _check_run_dir(run_dir, resume, overwrite)
    try:
        made = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        return made
    except OSError as exc:
        raise UserError(f"cannot create the run folder {run_dir} ({exc.strerror or exc})") from None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where that is unavailable."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def build_folder(run_dir: Path, kind: str, pid: int) -> Path:
    return run_dir.with_name(f".{run_dir.name}.{kind}-{pid}")


def _remove_stale_builds(run_dir: Path) -> None:
    """Clear what a killed ``--overwrite`` left beside the run (hidden, so listings never show it): a new run that
    never proved itself is deleted; an old run moved aside mid-swap is put back if the run folder is missing."""
    for folder in run_dir.parent.glob(f".{glob.escape(run_dir.name)}.*-*"):
        kind, _, pid = folder.name[len(run_dir.name) + 2 :].rpartition("-")
        if kind not in ("new", "old") or not pid.isdigit() or process_alive(int(pid)):
            continue
        if kind == "old" and not run_dir.exists():
            folder.rename(run_dir)
        else:
            shutil.rmtree(folder, ignore_errors=True)


class SwapInWriter(CheckpointWriter):
    """The writer of an ``--overwrite`` run built in a hidden sibling folder: right after the first checkpoint
    that follows a training step is on disk (its weights were checked finite before it was written), the new
    folder and the old run trade places atomically, the old run is deleted and the trainer writes on in place.
    Until then the old run is untouched, so a run that diverges, is interrupted or fails keeps it."""

    def __init__(self, trainer: Trainer, run_dir: Path):
        super().__init__()
        self.trainer, self.run_dir, self.swapped = trainer, run_dir, False

    def start(self, write: Callable[[], None]) -> None:
        if self.swapped or self.trainer.step == 0:
            return super().start(write)

        def write_then_swap() -> None:
            write()
            if not self.swapped:  # the next checkpoint may be queued before this swap has run
                self.swap()

        super().start(write_then_swap)

    def swap(self) -> None:
        built, run_dir = self.trainer.run_dir, self.run_dir
        try:
            if not _exchange(built, run_dir):  # two renames; a kill between them is undone by _remove_stale_builds
                old = build_folder(run_dir, "old", os.getpid())
                os.rename(run_dir, old)
                os.rename(built, run_dir)
                built = old
        except OSError as exc:
            raise UserError(f"could not move the new run into {run_dir} ({exc.strerror or exc}); it was kept") from None
        self.swapped = True
        self.trainer.run_dir = run_dir
        self.trainer.history_writer.path = run_dir / HISTORY
        shutil.rmtree(built, ignore_errors=True)  # the old run


def check_folder(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if run_dir.parent.is_dir():  # a repair, not a change: a run a killed swap left aside is put back first
        _remove_stale_builds(run_dir)
    _check_run_dir(run_dir, resume, overwrite)


def replace_run(trainer: Trainer, run_dir: Path) -> dict:
    """Train ``trainer`` (aimed at a hidden sibling of ``run_dir``) and swap it in at its first good checkpoint;
    until then the old run is locked and untouched. Whatever fails first, the hidden folder is removed. Under
    torchrun rank 0 alone locks, makes and swaps the folders (the others only train)."""
    if not trainer.is_main:
        return trainer.fit()
    build_dir = trainer.run_dir
    with run_lock(run_dir):  # keeps other trainers out of the old run until the new one replaces it
        writer = trainer.writer = SwapInWriter(trainer, run_dir)
        try:
            build_dir.mkdir()
        except OSError as exc:
            raise UserError(f"cannot create {build_dir} beside {run_dir} ({exc.strerror or exc})") from None
        try:
            with run_lock(build_dir):
                return trainer.fit()
        except Diverged as exc:  # (a signal always lets one step finish, so an interrupted run has swapped)
            exc.kept_previous = not writer.swapped
            raise
        finally:
            if not writer.swapped:
                shutil.rmtree(build_dir, ignore_errors=True)
