"""The one training loop every model shares (``Trainer``). It knows nothing model-specific: the model brings its
own optimizers and ``training_step``; the loop brings data, budget, logging, checkpoints and resume.

Exact resume: each epoch's batch order is a permutation seeded by (seed, epoch), so a resumed run skips
the batches it already saw and restores the torch RNG state the model draws its noise from. Train 10
steps + resume 10 == train 20.

Several processes (torchrun): each rank trains on its shard of every global batch of that permutation, the
model's networks are wrapped in DistributedDataParallel for the duration of ``fit``, and only rank 0 writes;
see ``generators/distributed.py``. The run folder around the loop (checks, locking, ``--overwrite``) is
``generators/run_folder.py``; the entry point that puts them together is ``generators/training.py``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from . import __version__, distributed
from .base import Generator
from .checkpoints import PREVIEW, HistoryWriter, atomic_write_bytes, read_history, save_resume_state, save_weights
from .data import ImageData
from .errors import UserError
from .machine import describe_machine
from .precision import StepRunner
from .train_config import DEFAULT_EPOCHS, TrainConfig, lr_factor

PREVIEW_SEED = 1234  # preview grids always decode the same 64 latents, so epochs are comparable


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
        for optimizer in self.optimizers.values():  # the rates the model asked for: the schedule scales these
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
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
            if self.runner.scaler is not None and state.get("grad_scaler"):  # absent: resumed from another precision
                self.runner.scaler.load_state_dict(state["grad_scaler"])
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
        if self.runner.scaler is not None:  # fp16: the loss scale it has found goes on from where it was
            state["grad_scaler"] = self.runner.scaler.state_dict()
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
                    self._schedule_lr(total)
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

    def _schedule_lr(self, total: int | None) -> None:
        """Set this step's learning rates from the schedule (a function of the step: resuming needs no state)."""
        if self.cfg.lr_schedule in (None, "constant"):
            return
        factor = lr_factor(self.cfg.lr_schedule, self.step, total)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

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
