"""The one training loop every model shares. It knows nothing model-specific: the model brings its own
optimizers and ``training_step``; the loop brings data, budget, logging, checkpoints and resume.

Exact resume: each epoch's batch order is a permutation seeded by (seed, epoch), so a resumed run skips
the batches it already saw and restores the torch RNG state the model draws its noise from. Train 10
steps + resume 10 == train 20.

Distributed-ready: ``rank``/``world_size`` shard each permutation in ``epoch_batches`` and ``is_main``
guards every write; a torchrun mode only has to set those two and wrap the model's nets in DDP.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from . import __version__
from .base import Generator
from .checkpoints import (
    PREVIEW,
    RUN_FILES,
    TEMP_MARK,
    WEIGHTS,
    HistoryWriter,
    atomic_write_bytes,
    load_resume_state,
    lock_holder,
    read_history,
    read_run_info,
    remove_temp_files,
    run_lock,
    save_resume_state,
    save_weights,
)
from .data import ImageData, check_dataset_name
from .errors import UserError

DEFAULT_EPOCHS = 10
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

    def __post_init__(self) -> None:
        budgets = [b for b in (self.epochs, self.steps, self.minutes) if b is not None]
        if len(budgets) > 1:
            raise UserError("give one budget: --epochs, --steps or --minutes")
        if any(b <= 0 for b in budgets):
            raise UserError("--epochs, --steps and --minutes must be positive")
        if self.batch_size < 1 or self.log_every < 1:
            raise UserError("--batch-size and --log-every must be positive")


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


def choose_device(name: str = "auto") -> torch.device:
    if name != "auto":
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
    """This rank's batches of epoch ``epoch``: a (seed, epoch)-seeded permutation, full batches only."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    order = order[rank::world_size]
    batches = order[: len(order) // batch_size * batch_size].view(-1, batch_size).tolist()
    return batches[skip:]


class Trainer:
    """Train ``model`` on ``data`` into ``run_dir``; ``run_info`` is stored with every checkpoint."""

    def __init__(
        self,
        model: Generator,
        data: ImageData,
        cfg: TrainConfig,
        run_dir: Path,
        run_info: dict,
        callback: Callable[[dict], None] | None = None,
        show_progress: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.cfg, self.data, self.run_dir, self.run_info = cfg, data, Path(run_dir), run_info
        self.device = choose_device(cfg.device)
        self.model = model.to(self.device)
        self.optimizers = model.configure_optimizers(cfg)
        self.callback, self.show_progress = callback, show_progress
        self.rank, self.world_size = rank, world_size
        self.is_main = rank == 0
        n_train = len(data.train) // world_size
        self.batch_size = min(cfg.batch_size, n_train)
        if self.batch_size < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise UserError(
                f"{model.name} uses batch norm, which needs batches of at least 2 images; "
                f"use a larger --batch-size or a dataset with more images (it has {n_train} to train on)"
            )
        self.steps_per_epoch = n_train // self.batch_size
        self.step = self.epoch = self.batch_in_epoch = 0
        self.seconds_before = 0.0  # training time of earlier sessions of a resumed run
        self.history: list[dict] = []
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
            torch.set_rng_state(state["rng"]["torch"])
            if torch.cuda.is_available() and state["rng"].get("cuda"):
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise UserError(
                f"{self.run_dir}/resume.pt does not fit this model or run: {str(exc).splitlines()[0][:200]}"
            ) from None
        self.history = [r for r in read_history(self.run_dir) if r.get("step", math.inf) <= self.step]

    def _state(self, seconds: float) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "seconds": seconds,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    def checkpoint(self, seconds: float, preview: bool = False, wait: bool = False) -> None:
        """Snapshot now, then write history, preview, resume state and weights in the background (``wait``:
        before returning). Each file is atomic and whole on its own; one checkpoint is in flight at a time.

        Weights that are already NaN/inf (the last optimizer step blew up after a finite loss) are never
        written: the run stops with ``Diverged`` and the previous checkpoint stays the last good one.
        """
        if not self.is_main:
            return
        bad = first_non_finite(self.model.state_dict())
        if bad is not None:
            raise Diverged(f"weight {bad} became NaN or infinite by step {self.step}")
        # the preview first: leaving training mode may recalibrate buffers (DCGAN BatchNorm), and the saved
        # state must hold what the run goes on with, or a resumed run would differ from an uninterrupted one
        grid = self.preview_grid() if preview else None
        state = copy.deepcopy(self._state(seconds))  # training changes the live tensors while the writer works
        history = list(self.history)
        info = {
            **self.run_info,
            "epoch": self.epoch,
            "step": self.step,
            "seconds": round(seconds, 2),
            "code_version": __version__,
        }

        def write() -> None:
            self.history_writer.write(history)
            if grid is not None:
                atomic_write_bytes(self.run_dir / PREVIEW, preview_png(grid, self.model.config.image_shape[0]))
            save_resume_state(self.run_dir, state)
            save_weights(self.run_dir, state["model"], info)

        self.writer.start(write)
        if wait:
            self.writer.wait()

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
        self._stop_signal = signum

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
        """Run until the budget is spent. Raises ``Diverged`` or ``Interrupted`` after keeping a checkpoint."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._fit()
        except BaseException:
            with contextlib.suppress(Exception):  # the first failure is the one to report
                self.writer.wait()  # never leave a write half-way when the process exits
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
        self.model.train()
        try:
            while not self._budget_done(elapsed()):
                for images, labels in self._loader():
                    logs = self.model.training_step(
                        (images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)),
                        self.optimizers,
                    )
                    self.step += 1
                    self.batch_in_epoch += 1
                    bad = [k for k, v in logs.items() if not math.isfinite(v)]
                    if bad:
                        raise Diverged(f"{bad[0]} became {logs[bad[0]]} at step {self.step}")
                    session_images += len(images) * self.world_size
                    seconds = elapsed()
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
                    if not self._budget_done(elapsed()) and self._stop_signal is None:
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
        if self.callback is not None:
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


def _prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> bool:
    """Refuse what would lose or clobber work, before anything is written; then make the folder.

    Returns whether the folder was made here (so a run that fails before its first file can remove it)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run folder: pick another --run or --out-dir")
    owner = lock_holder(run_dir)
    if owner:
        raise UserError(f"{run_dir} is being trained by process {owner}; wait for it or stop it first")
    entries = [p.name for p in run_dir.iterdir()] if run_dir.is_dir() else []
    exists = any(name != ".lock" for name in entries)
    if exists and not (resume or overwrite):
        raise UserError(f"run folder {run_dir} already exists: pick another --run, or add --resume or --overwrite")
    if resume and not (run_dir / WEIGHTS).is_file():
        hint = " (it never reached its first checkpoint: use --overwrite)" if exists else ""
        raise UserError(f"nothing to resume: {run_dir / WEIGHTS} does not exist{hint}")
    if overwrite and exists and not any(name in RUN_FILES or TEMP_MARK in name for name in entries):
        raise UserError(
            f"{run_dir} holds files but is not a run folder; --overwrite would delete them, so pick another --run"
        )
    try:
        made = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        return made
    except OSError as exc:
        raise UserError(f"cannot create the run folder {run_dir} ({exc.strerror or exc})") from None


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
    """Everything ``python -m generators train`` does: check, lock, load data, build or resume, fit.

    A run folder that already holds a run is refused unless ``resume`` (continue it) or ``overwrite``.
    Every argument is checked before the run folder is touched, so a typo never leaves a folder behind.
    """
    from .data import load_dataset
    from .registry import build_model, model_class

    run_dir = Path(run_dir)
    cls = model_class(model_name)
    if resume and overwrite:
        raise UserError("give --resume or --overwrite, not both")
    size = cfg.image_size
    cls.Config.from_dict({**model_options, **({"image_shape": (cfg.channels or 1, size, size)} if size else {})})
    choose_device(cfg.device)
    if not resume:
        check_dataset_name(cfg.dataset)
    made = _prepare_run_dir(run_dir, resume, overwrite)
    if resume:
        stored = read_run_info(run_dir)
        if stored["model"] != model_name:
            raise UserError(f"{run_dir} holds a {stored['model']} run, not {model_name}")
        _check_resume_options(model_options, stored["model_config"], run_dir)
        model_options = stored["model_config"]  # the run keeps the architecture it was created with
        budget = {k: getattr(cfg, k) for k in ("epochs", "steps", "minutes")}
        if all(v is None for v in budget.values()):
            budget = {k: stored["train_config"].get(k) for k in budget}  # the same command finishes the run
        cfg = TrainConfig(**{**stored["train_config"], **budget, "device": cfg.device})
    try:
        with run_lock(run_dir):
            remove_temp_files(run_dir)
            data = load_dataset(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.channels)
            torch.manual_seed(cfg.seed)
            model = build_model(model_name, {**model_options, **dataset_fields(cls, data)})
            if overwrite:
                for old in run_dir.iterdir():
                    if old.name != ".lock":
                        shutil.rmtree(old) if old.is_dir() else old.unlink()
            info = {
                "model": model_name,
                "model_config": model.config.to_dict(),
                "dataset": cfg.dataset,
                "image_shape": list(data.image_shape),
                "class_names": data.class_names,
                "train_config": asdict(cfg),
                "seed": cfg.seed,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            if resume:
                info["created"] = stored.get("created", info["created"])
            trainer = Trainer(model, data, cfg, run_dir, info, callback=callback, show_progress=show_progress)
            if resume:
                trainer.resume_from(load_resume_state(run_dir))
            return trainer.fit()
    except BaseException:
        if made and not any(run_dir.iterdir()):  # e.g. an unreadable dataset: leave no empty folder behind
            run_dir.rmdir()
        raise
