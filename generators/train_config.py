"""What a training run is asked to do (``TrainConfig``: data, budget, batch, seed, device, precision), checked
field by field, and the two questions asked of it from outside a run: what a run stores of it
(``stored_train_config``) and whether a stored run has spent it (``budget_reached``). It imports no other part
of the harness, so the run files (``generators/checkpoints.py``) can read a stored config without the loop."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .base import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from .errors import UserError
from .limits import (
    MAX_BATCH_SIZE,
    MAX_CLASSES,
    MAX_EPOCHS,
    MAX_MINUTES,
    MAX_SEED,
    MAX_STEPS,
    checked_float,
    checked_int,
)
from .precision import PRECISIONS

DEFAULT_EPOCHS = 10
SUBSET_FIELDS = ("train_size", "exclude_classes")
LR_SCHEDULES = ("constant", "cosine")
# stored only when set, so a run that does not use them has the same stored config as runs made before they existed
OPTIONAL_FIELDS = (*SUBSET_FIELDS, "lr_schedule")


@dataclass
class TrainConfig:
    dataset: str = "mnist5k"
    data_dir: str = "data"
    image_size: int | None = None
    channels: int | None = None
    epochs: int | None = None
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"
    log_every: int = 1
    # how the steps compute (generators/precision.py); None: fp32 / uncompiled, or a resumed run's own setting
    precision: str | None = None
    compile: bool | None = None
    # fewer training images (generators.data.training_subset); the test split stays whole
    train_size: int | None = None
    exclude_classes: list[int] | None = None
    # the learning rates over the budget: constant (None), or cosine from the model's rates down to 0 at its end
    lr_schedule: str | None = None

    def __post_init__(self) -> None:
        """Types and ranges of every field: the values come from the command line or from a stored run file."""
        budgets = [b for b in (self.epochs, self.steps, self.minutes) if b is not None]
        if len(budgets) > 1:
            raise UserError("give one budget: --epochs, --steps or --minutes")
        if any(isinstance(b, (int, float)) and b <= 0 for b in budgets):
            raise UserError("--epochs, --steps and --minutes must be positive")
        if self.epochs is not None:
            checked_int("--epochs", self.epochs, 1, MAX_EPOCHS)
        if self.steps is not None:
            checked_int("--steps", self.steps, 1, MAX_STEPS)
        if self.minutes is not None:
            self.minutes = checked_float("--minutes", self.minutes, 0, MAX_MINUTES, low_open=True)
        checked_int("--batch-size", self.batch_size, 1, MAX_BATCH_SIZE)
        checked_int("--log-every", self.log_every, 1, MAX_STEPS)
        checked_int("--seed", self.seed, 0, MAX_SEED)
        size = self.image_size
        if size is not None and checked_int("--image-size", size, 1, MAX_STEPS) > MAX_IMAGE_SIZE:
            raise UserError(f"--image-size {size} is too large: at most {MAX_IMAGE_SIZE}")
        if size is not None and (size % 2 or size < MIN_IMAGE_SIZE):
            raise UserError(
                f"--image-size {size} ({size}x{size}) is not supported: use an even size "
                f"between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} (e.g. 28, 32 or 64)"
            )
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r:.40}")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise UserError(f"compile must be true or false, got {self.compile!r:.40}")
        if self.lr_schedule is not None:
            if self.lr_schedule not in LR_SCHEDULES:
                raise UserError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r:.40}")
            if self.lr_schedule != "constant" and self.minutes is not None:
                raise UserError(f"--lr-schedule {self.lr_schedule} needs --steps or --epochs: it decays to the end")
        if self.train_size is not None:
            checked_int("--train-size", self.train_size, 1, MAX_STEPS)
        if self.exclude_classes is not None:
            if not isinstance(self.exclude_classes, list) or len(self.exclude_classes) > MAX_CLASSES:
                raise UserError(f"--exclude-classes must be a list of classes, got {self.exclude_classes!r:.60}")
            self.exclude_classes = (
                sorted({checked_int("--exclude-classes", c, 0, MAX_CLASSES) for c in self.exclude_classes}) or None
            )
        if self.channels not in (None, 1, 3) or isinstance(self.channels, bool):
            raise UserError(f"--channels must be 1 or 3, got {self.channels!r}")
        for flag, text in (("--dataset", self.dataset), ("--data-dir", self.data_dir), ("--device", self.device)):
            if not isinstance(text, str) or len(text) > 4096:
                raise UserError(f"{flag} must be a text of at most 4096 characters, got {text!r:.80}")


def budget_reached(info: dict, cfg: TrainConfig) -> bool:
    """Whether a stored run (its ``info``) has spent ``cfg``'s budget: a finished run that a sweep skips."""
    if cfg.steps is not None:
        return int(info.get("step", 0)) >= cfg.steps
    if cfg.minutes is not None:
        return float(info.get("seconds", 0)) >= cfg.minutes * 60
    return int(info.get("epoch", 0)) >= (cfg.epochs or DEFAULT_EPOCHS)


def lr_factor(schedule: str | None, step: int, total: int | None) -> float:
    """The share of its base learning rate that step ``step + 1`` of ``total`` trains with."""
    if schedule in (None, "constant") or not total:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))


def stored_train_config(cfg: TrainConfig) -> dict:
    """The train config a run stores; the optional fields only when set, so a run on the whole split with a
    constant learning rate has the same stored config as the runs made before they existed (and groups and sweeps
    with them)."""
    stored = asdict(cfg)
    for key in OPTIONAL_FIELDS:
        if stored[key] is None:
            del stored[key]
    return stored
