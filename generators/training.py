"""The one training loop every model shares. It knows nothing model-specific: the model brings its own
optimizers and ``training_step``; the loop brings data, budget, logging, checkpoints and resume.

Exact resume: each epoch's batch order is a permutation seeded by (seed, epoch), so a resumed run skips
the batches it already saw and restores the torch RNG state the model draws its noise from. Train 10
steps + resume 10 == train 20.

Several processes (torchrun): each rank trains on its shard of every global batch of that permutation, the
model's networks are wrapped in DistributedDataParallel for the duration of ``fit``, and only rank 0 writes;
see ``generators/distributed.py``.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import glob
import io
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from . import __version__, distributed
from .base import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, Generator
from .checkpoints import (
    HISTORY,
    LOCK,
    PREVIEW,
    RESUME,
    RUN_FILES,
    TEMP_MARK,
    WEIGHTS,
    HistoryWriter,
    atomic_write_bytes,
    build_checked,
    load_resume_state,
    lock_holder,
    process_alive,
    read_history,
    read_run_info,
    remove_temp_files,
    run_lock,
    save_resume_state,
    save_weights,
)
from .cli import MAX_BATCH_SIZE, MAX_CLASSES, MAX_EPOCHS, MAX_MINUTES, MAX_SEED, MAX_STEPS, checked_float, checked_int
from .data import ImageData, check_dataset_name, training_subset
from .errors import UserError
from .machine import describe_machine
from .precision import PRECISIONS, StepRunner
from .registry import model_class

DEFAULT_EPOCHS = 10
SUBSET_FIELDS = ("train_size", "exclude_classes")
PREVIEW_SEED = 1234  # preview grids always decode the same 64 latents, so epochs are comparable


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


class CheckpointWriter:
    """Writes one checkpoint at a time on a background thread, so training does not wait for the disk.

    A checkpoint is a snapshot (tensors copied when it is taken), so training can go on changing the model
    while the files are written. A failed write is raised in the training thread by the next ``wait``.
    """

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, write: Callable[[], None]) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(write,), name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _run(self, write: Callable[[], None]) -> None:
        try:
            write()
        except BaseException as exc:  # handed to the training thread by wait()
            self._error = exc

    @property
    def busy(self) -> bool:
        """Whether a write is in flight."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Block until the write in flight is on disk; re-raise its failure."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error


def first_non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, or None.

    One float64 sum per tensor instead of an element-wise test: a sum is NaN or infinite exactly when a term
    is (float64 cannot overflow on float32 terms), and it reads each weight once without building a mask
    (4-6x faster on the default runs' models)."""
    names = [k for k, v in state.items() if v.is_floating_point()]
    if not names:
        return None
    finite = torch.isfinite(torch.stack([state[k].sum(dtype=torch.float64) for k in names])).tolist()
    return next((k for k, ok in zip(names, finite) if not ok), None)


def preview_png(grid: torch.Tensor, channels: int) -> bytes:
    """The preview grid as PNG: greyscale when the images are (make_grid repeats one channel three times), and
    a light compression level: 6x faster to encode than torchvision's save_image (RGB, level 6) and a third
    smaller on the default runs' previews. The writer thread holds the GIL while encoding, so that is time the
    training thread waits."""
    pixels = grid[:1] if channels == 1 else grid
    buffer = io.BytesIO()
    to_pil_image(pixels.mul(255).round().clamp(0, 255).to(torch.uint8)).save(buffer, format="png", compress_level=3)
    return buffer.getvalue()


class Diverged(Exception):
    """A loss became NaN or infinite; the last good checkpoint stays on disk."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written first."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


DEVICE_NAME = re.compile(r"(cpu|cuda|mps)(:\d{1,3})?")


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU. Other device types (``meta``, ``xla``…) cannot train a model
    here and are refused by name, before a run folder is made."""
    if name != "auto":
        if not DEVICE_NAME.fullmatch(name):
            raise UserError(f"device {name!r} is not supported: use auto, cpu, cuda, cuda:N or mps")
        try:
            device = torch.device(name)
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as exc:
            raise UserError(f"device {name!r} is not usable here: {str(exc).splitlines()[0]}") from None
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, skip: int = 0, rank: int = 0, world_size: int = 1
) -> list[list[int]]:
    """This rank's batches of epoch ``epoch``: a (seed, epoch)-seeded permutation cut into full global batches
    of ``batch_size``; rank r takes every ``world_size``-th image from r on (as ``DistributedSampler`` does), so
    the ranks' k-th batches are disjoint and together exactly the k-th batch of one process."""
    # modulo 2**64 (what manual_seed takes): unchanged for every seed below 2**47, defined for all up to 2**63-1
    order = torch.randperm(n, generator=torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**64))
    order = order[: n // batch_size * batch_size][rank::world_size]
    return order.view(-1, batch_size // world_size).tolist()[skip:]


class Trainer:
    """Train ``model`` on ``data`` into ``run_dir``; ``run_info`` is stored with every checkpoint.

    ``group``: the processes of a torchrun run (see ``generators/distributed.py``); ``cfg.batch_size`` is the
    global batch, split evenly over them. Every rank calls every method at the same points; only rank 0 writes.
    """

    def __init__(
        self,
        model: Generator,
        data: ImageData,
        cfg: TrainConfig,
        run_dir: Path,
        run_info: dict,
        callback: Callable[[dict], None] | None = None,
        show_progress: bool = True,
        group: distributed.Group | None = None,
    ):
        self.cfg, self.data, self.run_dir, self.run_info = cfg, data, Path(run_dir), run_info
        self.group = group or distributed.Group()
        self.rank, self.world_size, self.is_main = self.group.rank, self.group.world_size, self.group.is_main
        self.device = self.group.device(cfg.device)
        self.model = model.to(self.device)
        self.machine = describe_machine(self.device)  # what the stored training seconds were measured on
        say = (lambda text: print(text, file=sys.stderr)) if self.is_main else (lambda text: None)
        # the precision and compilation of every step (before the optimizers: it may change the weights' memory
        # format); weights, optimizer state and checkpoints stay fp32
        self.runner = StepRunner(self.model, self.device, cfg.precision or "fp32", bool(cfg.compile), say=say)
        self.optimizers = model.configure_optimizers(cfg)
        self.callback, self.show_progress = callback, show_progress
        n_train, ranks = len(data.train), self.world_size
        if cfg.batch_size <= n_train and cfg.batch_size % ranks:
            raise UserError(
                f"--batch-size {cfg.batch_size} is the global batch and must split evenly over the {ranks} "
                f"processes: use a multiple of {ranks}"
            )
        self.batch_size = min(cfg.batch_size, n_train // ranks * ranks)  # global; a small dataset caps it
        per_process = self.batch_size // ranks
        if per_process < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise UserError(
                f"{model.name} uses batch norm, which needs batches of at least 2 images"
                + (f" per process (--batch-size is split over {ranks})" if ranks > 1 else "")
                + f"; use a larger --batch-size or a dataset with more images (it has {n_train} to train on)"
            )
        if per_process < 1:
            raise UserError(f"the dataset has {n_train} images to train on, fewer than the {ranks} processes")
        self.steps_per_epoch = n_train // self.batch_size
        self.parallel = distributed.NetworksInDDP(self.model, self.group, self.device)
        if self.group.active:  # each process draws its own noise (the VAE's epsilon, the GAN's z)
            torch.manual_seed(distributed.rank_seed(cfg.seed, self.rank))
        self.step = self.epoch = self.batch_in_epoch = 0
        self.seconds_before = 0.0  # training time of earlier sessions of a resumed run
        self.history: list[dict] = []
        self._signal_received: int | None = None
        self._stop_signal: int | None = None
        self.writer = CheckpointWriter()
        self.history_writer = HistoryWriter(self.run_dir)  # used by the writer thread only

    # -- budget ---------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int | None:
        """Budgets are totals for the run, so re-running the same command with --resume finishes it."""
        if self.cfg.steps is not None:
            return self.cfg.steps
        if self.cfg.minutes is not None:
            return None
        return (self.cfg.epochs or DEFAULT_EPOCHS) * self.steps_per_epoch

    def _budget_done(self, seconds: float) -> bool:
        if self.cfg.minutes is not None:
            return seconds >= self.cfg.minutes * 60
        return self.step >= self.total_steps

    # -- state ----------------------------------------------------------------------------------
    def resume_from(self, state: dict) -> None:
        try:
            self.model.load_state_dict(self.model.upgrade_state_dict(state["model"]))
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.batch_in_epoch, self.seconds_before = int(state["batch_in_epoch"]), float(state["seconds"])
            # every rank continues its own noise stream; with another number of processes than before, the
            # data order is still the same (global batches) but the others start fresh streams
            rngs = state.get("rng_by_rank", [state["rng"]])
            rng = rngs[self.rank] if len(rngs) == self.world_size or self.rank == 0 else None
            if rng is None:
                torch.manual_seed(distributed.rank_seed(self.cfg.seed, self.rank) + self.step)
            else:
                torch.set_rng_state(rng["torch"])
                if torch.cuda.is_available() and rng.get("cuda"):
                    torch.cuda.set_rng_state_all(rng["cuda"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise UserError(
                f"{self.run_dir}/resume.pt does not fit this model or run: {str(exc).splitlines()[0][:200]}"
            ) from None
        self.history = [r for r in read_history(self.run_dir) if r.get("step", math.inf) <= self.step]

    @staticmethod
    def _rng_state() -> dict:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def _state(self, seconds: float, rngs: list[dict]) -> dict:
        """What --resume needs; ``rngs``: every rank's RNG state (one process: its own, as ``rng`` alone)."""
        state = {
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "seconds": seconds,
            "rng": rngs[0],
        }
        if len(rngs) > 1:
            state["rng_by_rank"] = rngs
        return state

    def checkpoint(self, seconds: float, preview: bool = False, wait: bool = False) -> None:
        """Snapshot now, then write history, preview, resume state and weights in the background (``wait``:
        before returning, and every rank waits for it). Each file is atomic and whole on its own; one checkpoint
        is in flight at a time. Every rank calls this at the same points; rank 0 gathers their RNG states and
        writes.

        Weights that are already NaN/inf (the last optimizer step blew up after a finite loss) are never
        written: the run stops with ``Diverged`` and the previous checkpoint stays the last good one.
        """
        with self.parallel.plain():
            self._checkpoint(seconds, preview)
        if wait:
            if self.is_main:
                self.writer.wait()
            self.group.barrier()  # no rank goes on (or exits) before the run folder is whole

    def _checkpoint(self, seconds: float, preview: bool) -> None:
        bad = first_non_finite(self.model.state_dict()) if self.is_main else None
        replies = self.group.all_gather((bad, self._rng_state()))  # one collective: rank 0's verdict, every RNG
        bad, rngs = replies[0][0], [rng for _, rng in replies]
        if bad is not None:
            raise Diverged(f"weight {bad} became NaN or infinite by step {self.step}")
        if not self.is_main:
            return
        # the preview first: leaving training mode may recalibrate buffers (DCGAN BatchNorm), and the saved
        # state must hold what the run goes on with, or a resumed run would differ from an uninterrupted one
        grid = self.preview_grid() if preview else None
        state = copy.deepcopy(self._state(seconds, rngs))  # training changes the live tensors while the writer works
        history = list(self.history)
        info = {
            **self.run_info,
            "epoch": self.epoch,
            "step": self.step,
            "seconds": round(seconds, 2),
            "code_version": __version__,
            "machine": self.machine,
            **self.runner.speed.record(),  # what the steps of the last session ran in (precision, compiled)
        }

        def write() -> None:
            self.history_writer.write(history)
            if grid is not None:
                atomic_write_bytes(self.run_dir / PREVIEW, preview_png(grid, self.model.config.image_shape[0]))
            save_resume_state(self.run_dir, state)
            save_weights(self.run_dir, state["model"], info)

        self.writer.start(write)

    @torch.no_grad()
    def preview_grid(self) -> torch.Tensor:
        """The 8 x 8 grid of the fixed preview latents, drawn without touching the training RNG."""
        was_training = self.model.training
        self.model.eval()
        rng_state = torch.get_rng_state()
        images = self.model.sample(64, generator=torch.Generator().manual_seed(PREVIEW_SEED)).cpu()
        torch.set_rng_state(rng_state)
        self.model.train(was_training)
        return make_grid(images, nrow=8, padding=2)

    # -- the loop -------------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        self._signal_received = signum  # acted on once agreed by every rank (``_stop_signal``), at the same step

    def _loader(self) -> DataLoader:
        batches = epoch_batches(
            len(self.data.train),
            self.batch_size,
            self.cfg.seed,
            self.epoch,
            skip=self.batch_in_epoch,
            rank=self.rank,
            world_size=self.world_size,
        )
        # batch_size=None + a list of batches: the dataset indexes a whole batch at once (no per-image collate).
        # Its own generator: creating an iterator must not draw from the global RNG the models use.
        return DataLoader(
            self.data.train,
            sampler=batches,
            batch_size=None,
            generator=torch.Generator(),
            pin_memory=self.device.type == "cuda",
        )

    def fit(self) -> dict:
        """Run until the budget is spent. Raises ``Diverged`` or ``Interrupted`` after keeping a checkpoint;
        with several processes, all of them stop at the same step, or ``PeerFailed`` when another one died."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            with self.parallel:
                return self._fit()
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the first failure is the one to report
                self.writer.wait()  # never leave a write half-way when the process exits
            if self.group.active and self.is_main:  # the run is over: torchrun's SIGTERM must not cut rank 0's
                previous[signal.SIGTERM] = signal.SIG_IGN  # report short (the other ranks linger until it is out)
            if self.group.active and distributed.is_peer_failure(exc):
                raise distributed.PeerFailed(
                    f"another process of this run failed (its error is above); the last good checkpoint in "
                    f"{self.run_dir} was kept: continue with the same command plus --resume"
                ) from None
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _fit(self) -> dict:
        from tqdm.auto import tqdm

        start = time.perf_counter()
        elapsed = lambda: self.seconds_before + time.perf_counter() - start  # noqa: E731
        if self.step == 0:
            self.checkpoint(0.0, preview=True, wait=True)  # a loadable run exists before the first step
        total = self.total_steps
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not (self.show_progress and self.is_main),
            unit="step",
            dynamic_ncols=True,
        )
        session_images, session_start = 0, time.perf_counter()
        seconds = self.seconds_before  # updated after each step, the same on every rank: all decide alike
        self.model.train()
        try:
            while not self._budget_done(seconds):
                for images, labels in self._loader():
                    with self.runner.step(self.optimizers) as optimizers:
                        logs = self.model.training_step(
                            (images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)),
                            optimizers,
                        )
                    self.step += 1
                    self.batch_in_epoch += 1
                    logs, seconds, self._stop_signal = self.group.agree_step(
                        logs, elapsed(), self._signal_received, self.device
                    )
                    bad = [k for k, v in logs.items() if not math.isfinite(v)]
                    if bad:
                        raise Diverged(f"{bad[0]} became {logs[bad[0]]} at step {self.step}")
                    session_images += len(images) * self.world_size
                    if self.step % self.cfg.log_every == 0:
                        self.history.append(
                            {"step": self.step, "epoch": self.epoch, "seconds": round(seconds, 3), **logs}
                        )
                    img_per_s = session_images / max(time.perf_counter() - session_start, 1e-9)
                    self._report(bar, logs, img_per_s, seconds, total)
                    if self._stop_signal is not None or self._budget_done(seconds):
                        break
                if self.batch_in_epoch >= self.steps_per_epoch:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    if not self._budget_done(seconds) and self._stop_signal is None:
                        self.checkpoint(elapsed(), preview=True)
                if self._stop_signal is not None:
                    self.checkpoint(elapsed(), wait=True)
                    raise Interrupted(self._stop_signal)
            self.checkpoint(elapsed(), preview=True, wait=True)
        finally:
            bar.close()
        return {"step": self.step, "epoch": self.epoch, "seconds": elapsed()}

    def _report(self, bar, logs: dict, img_per_s: float, seconds: float, total: int | None) -> None:
        shown = {k: v for k, v in logs.items() if not k.startswith("kl_dim_")}
        if bar.n != self.step:
            bar.update(self.step - bar.n)
            if self.step % 10 == 0:
                bar.set_postfix(
                    {"epoch": self.epoch, **{k: f"{v:.3g}" for k, v in shown.items()}, "img/s": f"{img_per_s:.0f}"},
                    refresh=False,
                )
        if self.callback is not None and self.is_main:  # progress files: rank 0 writes, like every file
            if total is not None:
                eta = (total - self.step) * self.batch_size / max(img_per_s, 1e-9)
                fraction = self.step / total
            else:
                eta = max(self.cfg.minutes * 60 - seconds, 0.0)
                fraction = min(seconds / (self.cfg.minutes * 60), 1.0)
            self.callback(
                {
                    "step": self.step,
                    "total_steps": total,
                    "epoch": self.epoch,
                    "fraction": fraction,
                    "seconds": seconds,
                    "eta_s": eta,
                    "img_per_s": img_per_s,
                    "losses": shown,
                }
            )


def _check_resume_options(model_options: dict, stored: dict, run_dir: Path) -> None:
    """A resumed run keeps the architecture and losses it was created with; a different value is refused."""
    for name, value in model_options.items():
        if name in stored and name != "image_shape" and stored[name] != value:
            raise UserError(
                f"{run_dir} was trained with --{name.replace('_', '-')} {stored[name]}, not {value}; "
                f"a resumed run keeps its settings (drop the option, or train a new --run)"
            )


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


def _prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> bool:
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


def _build_folder(run_dir: Path, kind: str, pid: int) -> Path:
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
                old = _build_folder(run_dir, "old", os.getpid())
                os.rename(run_dir, old)
                os.rename(built, run_dir)
                built = old
        except OSError as exc:
            raise UserError(f"could not move the new run into {run_dir} ({exc.strerror or exc}); it was kept") from None
        self.swapped = True
        self.trainer.run_dir = run_dir
        self.trainer.history_writer.path = run_dir / HISTORY
        shutil.rmtree(built, ignore_errors=True)  # the old run


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


def _check_folder(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if run_dir.parent.is_dir():  # a repair, not a change: a run a killed swap left aside is put back first
        _remove_stale_builds(run_dir)
    _check_run_dir(run_dir, resume, overwrite)


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
    group.settle(lambda: _check_folder(run_dir, resume, overwrite), main_only=True)
    replacing = overwrite and run_dir.is_dir()
    if resume:
        stored = group.settle(lambda: read_run_info(run_dir))
        if stored["model"] != model_name:
            raise UserError(f"{run_dir} holds a {stored['model']} run, not {model_name}")
        _check_resume_options(model_options, stored["model_config"], run_dir)
        for key in SUBSET_FIELDS:  # the run keeps the images it was trained on
            given, kept = getattr(cfg, key), stored["train_config"].get(key)
            if given is not None and given != kept:
                flag = "--" + key.replace("_", "-")
                raise UserError(f"{run_dir} was trained with {flag} {kept}, not {given}; a resumed run keeps its data")
        model_options = stored["model_config"]  # the run keeps the architecture it was created with
        budget = {k: getattr(cfg, k) for k in ("epochs", "steps", "minutes")}
        if all(v is None for v in budget.values()):
            budget = {k: stored["train_config"].get(k) for k in budget}  # the same command finishes the run
        # precision and compilation are how a session computes, not what the run is: the command's, else stored
        speed = {k: getattr(cfg, k) for k in ("precision", "compile") if getattr(cfg, k) is not None}
        cfg = TrainConfig(**{**stored["train_config"], **budget, "device": cfg.device, **speed})
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
    build_dir = _build_folder(run_dir, "new", builder_pid) if replacing else run_dir
    trainer = Trainer(model, data, cfg, build_dir, info, callback=callback, show_progress=show_progress, group=group)
    if resume:

        def restore() -> None:
            state = load_resume_state(run_dir)
            check_resume_state(state, trainer, run_dir / RESUME)
            trainer.resume_from(state)

        group.settle(restore)
    # everything is checked: from here on the disk changes
    if replacing:
        return _replace_run(trainer, run_dir)
    made = group.settle(lambda: _prepare_run_dir(run_dir, resume, overwrite), main_only=True)
    try:
        with run_lock(run_dir) if group.is_main else contextlib.nullcontext():
            if group.is_main:
                remove_temp_files(run_dir)
            return trainer.fit()
    except BaseException:
        if made and not any(run_dir.iterdir()):  # e.g. a failed first write: leave no empty folder behind
            run_dir.rmdir()
        raise


def budget_reached(info: dict, cfg: TrainConfig) -> bool:
    """Whether a stored run (its ``info``) has spent ``cfg``'s budget: a finished run that a sweep skips."""
    if cfg.steps is not None:
        return int(info.get("step", 0)) >= cfg.steps
    if cfg.minutes is not None:
        return float(info.get("seconds", 0)) >= cfg.minutes * 60
    return int(info.get("epoch", 0)) >= (cfg.epochs or DEFAULT_EPOCHS)


def stored_train_config(cfg: TrainConfig) -> dict:
    """The train config a run stores; the subset fields only when set, so a run on the whole split has the same
    stored config as the runs made before they existed (and groups and sweeps with them)."""
    stored = asdict(cfg)
    for key in SUBSET_FIELDS:
        if stored[key] is None:
            del stored[key]
    return stored


def run_data(cfg: TrainConfig) -> ImageData:
    """The data a run trains on: its dataset, converted, with its training subset (``--train-size``,
    ``--exclude-classes``)."""
    from .data import load_dataset

    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.channels)
    return training_subset(data, cfg.train_size, cfg.exclude_classes)


def _replace_run(trainer: Trainer, run_dir: Path) -> dict:
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
