"""``run_training``: everything ``python -m generators train`` does, in order: check every argument, load the
data, build or resume the model, then train it into its run folder, locked, under torchrun in each process.

The parts live beside it, one job each: the config (``generators/train_config.py``), the loop
(``generators/trainer.py``), the run folder and resume state (``generators/run_folder.py``) and the process group
(``generators/distributed.py``). ``TrainConfig``, ``Trainer``, ``Diverged`` and ``Interrupted`` are importable
from here as well, beside ``run_training``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from . import distributed
from .base import Generator
from .checkpoints import RESUME, build_checked, load_resume_state, read_run_info, remove_temp_files, run_lock
from .data import ImageData, check_dataset_name, load_dataset, training_subset
from .errors import UserError
from .machine import choose_device
from .registry import model_class
from .run_folder import (
    build_folder,
    check_folder,
    check_resume_state,
    prepare_run_dir,
    replace_run,
    resumed_settings,
)
from .train_config import TrainConfig, stored_train_config
from .trainer import Diverged, Interrupted, Trainer

__all__ = ["Diverged", "Interrupted", "TrainConfig", "Trainer", "dataset_fields", "run_data", "run_training"]


def dataset_fields(cls: type[Generator], data: ImageData) -> dict:
    """The config fields the dataset decides: the image shape and, for a class-conditional model, the number of
    classes (a dataset without labels is refused: there is nothing to condition on)."""
    fields = {"image_shape": data.image_shape}
    if "num_classes" in {f.name for f in dataclasses.fields(cls.Config)}:
        if data.num_classes is None or data.train.labels is None:
            raise UserError(
                f"{cls.name} is class-conditional but dataset {data.name} has no class labels: "
                f"put the images in one sub-folder per class, or train an unconditional model"
            )
        fields["num_classes"] = data.num_classes
    return fields


def run_training(
    model_name: str,
    model_options: dict,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[dict], None] | None = None,
    show_progress: bool = True,
) -> dict:
    """Everything ``python -m generators train`` does: check, load data, build or resume, lock, fit.

    A run folder that already holds a run is refused unless ``resume`` (continue it) or ``overwrite``. Every
    argument, the dataset, the model and the batch size are checked before anything on disk changes, so bad input
    never leaves a folder behind. ``overwrite`` builds the new run beside the old one and swaps it in only after
    its first good checkpoint (``SwapInWriter``): an ``overwrite`` that fails in any way leaves the old run as it
    was, and a ``Diverged`` raised before the swap carries ``kept_previous = True``. Under torchrun every process
    runs this; rank 0 alone checks the folder, locks and writes (``_train_in_group``).
    """
    run_dir = Path(run_dir)
    cls = model_class(model_name)
    if resume and overwrite:
        raise UserError("give --resume or --overwrite, not both")
    size = cfg.image_size
    cls.Config.from_dict({**model_options, **({"image_shape": (cfg.channels or 1, size, size)} if size else {})})
    choose_device(cfg.device)
    if not resume:
        check_dataset_name(cfg.dataset)
    with distributed.joined(cfg.device) as group:  # under torchrun: one of several processes
        return _train_in_group(
            group,
            model_name,
            model_options,
            cfg,
            run_dir,
            resume=resume,
            overwrite=overwrite,
            callback=callback,
            show_progress=show_progress,
        )


def _train_in_group(
    group: distributed.Group,
    model_name: str,
    model_options: dict,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    resume: bool,
    overwrite: bool,
    callback: Callable[[dict], None] | None,
    show_progress: bool,
) -> dict:
    """``run_training`` once the processes are known. A step that can fail on one rank is ``settle``d, so every
    rank stops together with one message."""
    group.settle(lambda: check_folder(run_dir, resume, overwrite), main_only=True)
    replacing = overwrite and run_dir.is_dir()
    if resume:
        stored = group.settle(lambda: read_run_info(run_dir))
        model_options, cfg = resumed_settings(stored, model_name, model_options, cfg, run_dir)
    cfg = dataclasses.replace(cfg, precision=cfg.precision or "fp32", compile=bool(cfg.compile))
    # rank 0 first: a torchvision dataset is downloaded once, then the other ranks read its files
    data = group.settle(lambda: run_data(cfg), main_first=True)
    torch.manual_seed(cfg.seed)
    model = build_checked(model_name, {**model_options, **dataset_fields(model_class(model_name), data)})
    info = {
        "model": model_name,
        "model_config": model.config.to_dict(),
        "dataset": cfg.dataset,
        "image_shape": list(data.image_shape),
        "class_names": data.class_names,
        "train_config": stored_train_config(cfg),
        "seed": cfg.seed,
        "world_size": group.world_size,  # processes of the last session; --batch-size is their total
        "created": stored.get("created", "") if resume else time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    builder_pid = group.all_gather(os.getpid())[0]  # rank 0's: every rank names the same hidden folder
    build_dir = build_folder(run_dir, "new", builder_pid) if replacing else run_dir
    trainer = Trainer(model, data, cfg, build_dir, info, callback=callback, show_progress=show_progress, group=group)
    if resume:

        def restore() -> None:
            state = load_resume_state(run_dir)
            check_resume_state(state, trainer, run_dir / RESUME)
            trainer.resume_from(state)

        group.settle(restore)
    # everything is checked: from here on the disk changes
    if replacing:
        return replace_run(trainer, run_dir)
    made = group.settle(lambda: prepare_run_dir(run_dir, resume, overwrite), main_only=True)
    try:
        with run_lock(run_dir) if group.is_main else contextlib.nullcontext():
            if group.is_main:
                remove_temp_files(run_dir)
            return trainer.fit()
    except BaseException:
        if made and not any(run_dir.iterdir()):  # e.g. a failed first write: leave no empty folder behind
            run_dir.rmdir()
        raise


def run_data(cfg: TrainConfig) -> ImageData:
    """The data a run trains on: its dataset, converted, with its training subset (``--train-size``,
    ``--exclude-classes``)."""
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.channels)
    return training_subset(data, cfg.train_size, cfg.exclude_classes)
