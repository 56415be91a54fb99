"""Training with several processes: ``torchrun --standalone --nproc_per_node N -m generators train MODEL ...``.

torchrun starts N copies of the same command and tells each its rank. Each joins one process group (gloo on the
CPU, nccl on CUDA with one GPU per process) and trains on its shard of every global batch. ``--batch-size`` stays
the global batch, split evenly over the processes, so the same command means the same run with 1 or N processes:
the same batches, steps, epochs, learning rate and run folder, only faster.

The harness wraps a model it knows nothing about: for the duration of training, every child network with
trainable weights (an autoencoder's encoder and decoder, a GAN's G and D) is replaced by a
``DistributedDataParallel`` wrapper of itself. The model's own ``training_step`` still calls ``self.generator(z)``;
DDP averages the gradients across processes during ``backward``, before the model's ``optimizer.step()``. The
mean over processes of per-process batch means is the mean over the global batch, so where a step depends on its
batch alone (no noise, no BatchNorm: the autoencoder) the weights follow one process with the global batch up to
float rounding. Noise (the VAE's epsilon, the GAN's z) is drawn by each process from its own stream, and
BatchNorm normalises over each process's share of the batch (per-process statistics, PyTorch's default; rank 0's
running statistics are broadcast at every forward). SyncBatchNorm is not offered: PyTorch runs it on GPUs only.
Checkpoints and previews see the unwrapped networks, so the run folder is the same as from one process. A
GAN's EMA copy of G is not trained, so it is not wrapped: every rank updates it from the same averaged weights,
and rank 0's is saved. Samplers (GMM, two-stage) are fitted after training, in one process.

Only rank 0 talks to the user and writes; every decision that must be the same everywhere (stop on a NaN or a
signal, the clock of a ``--minutes`` budget, a bad checkpoint) is agreed through a collective, so all processes
stop at the same step.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import EXIT_BAD_INPUT, EXIT_CTRL_C, UserError
from .machine import choose_device

LINGER_SECONDS = 5  # how long a failed rank other than 0 waits for rank 0 to report and exit
# what a collective raises in a process whose peer has died (gloo: "Connection closed by peer")
PEER_FAILURE_MARKS = ("closed by peer", "reset by peer", "Broken pipe", "NCCL communicator was aborted")


class PeerFailed(UserError):
    """Another process of the run stopped (its own error says why); this one stops too, quietly unless rank 0."""


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when run directly)."""
    return int(os.environ.get("RANK", "0"))


def rank_seed(seed: int, rank: int) -> int:
    """The noise stream of ``rank`` in a run with several processes (each must draw different noise)."""
    return seed * 100_003 + 7919 * (rank + 1)


@dataclass
class Group:
    """The processes of one run; a group of one (the default) makes every method here a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    joined: bool = field(default=False, repr=False)  # whether this object initialised the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def device(self, name: str) -> torch.device:
        """The device of this process: under torchrun one GPU per process (``cuda:LOCAL_RANK``) or the CPU."""
        if not self.active:
            return choose_device(name)
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = choose_device(name)
        if device.type not in ("cpu", "cuda"):
            raise UserError(
                f"several processes train on the CPU or on CUDA GPUs, not on {device.type}: use --device cpu"
            )
        if device.type == "cuda" and self.local_rank >= torch.cuda.device_count():
            raise UserError(
                f"process {self.local_rank} has no GPU of its own: this machine has {torch.cuda.device_count()}; "
                f"start at most that many with --nproc_per_node"
            )
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    # -- collectives (each a no-op in a group of one; a dead peer raises PeerFailed) ----------------
    def all_gather(self, value) -> list:
        """``value`` of every rank, in rank order."""
        if not self.active:
            return [value]
        values = [None] * self.world_size
        with peer_failures():
            dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.active:
            with peer_failures():
                dist.barrier()

    def agree_step(
        self, logs: dict[str, float], seconds: float, stop_signal: int | None, device: torch.device
    ) -> tuple[dict[str, float], float, int | None]:
        """One collective per step: the losses of the global batch (mean over ranks; a NaN anywhere is a NaN
        everywhere), one clock for ``--minutes`` (the mean of the ranks'), and a stop if any rank got a signal.
        Every rank's ``logs`` have the same keys: a model logs the same losses at every step."""
        if not self.active:
            return logs, seconds, stop_signal
        values = [*logs.values(), seconds, stop_signal == signal.SIGINT, stop_signal == signal.SIGTERM]
        total = torch.tensor(values, dtype=torch.float64, device=device)
        with peer_failures():
            dist.all_reduce(total)
        *means, seconds, sigint, sigterm = (v / self.world_size for v in total.tolist())
        stop = signal.SIGINT if sigint else signal.SIGTERM if sigterm else None
        return dict(zip(logs, means)), seconds, stop

    def settle(self, work: Callable[[], object], *, main_only: bool = False, main_first: bool = False):
        """Run ``work`` on every rank (``main_only``: on rank 0 alone; ``main_first``: on rank 0, then on the
        others), then agree on the outcome: if it failed anywhere, every rank stops. The user sees one error
        line, from rank 0: its own, or the first failed rank's; the other ranks raise ``PeerFailed`` (quiet).
        Returns ``work()``'s result (None where it did not run)."""
        if main_first and self.active:
            result = self.settle(work, main_only=True)
            return self._settle(lambda: result if self.is_main else work(), runs_here=True)
        return self._settle(work, runs_here=self.is_main or not main_only)

    def _settle(self, work: Callable[[], object], runs_here: bool):
        if not self.active:
            return work() if runs_here else None
        result, error, failure = None, None, None
        try:
            if runs_here:
                result = work()
        except BaseException as exc:  # every rank must reach the collective below, or the others wait forever
            error, failure = exc, (str(exc).splitlines() or [type(exc).__name__])[0]
        failures = self.all_gather(failure)
        if error is not None and (self.is_main or not isinstance(error, UserError)):
            raise error  # rank 0's own error, or a bug, with its traceback, on the rank it happened on
        failed = [(rank, text) for rank, text in enumerate(failures) if text is not None]
        if failed:
            rank, text = failed[0]
            if self.is_main:
                raise UserError(f"process {rank} of {self.world_size}: {text}")
            raise PeerFailed(text)
        return result


def join(device_name: str) -> Group:
    """Join the other processes torchrun started (environment ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``); a group
    of one when run directly. nccl on CUDA (each process on GPU ``LOCAL_RANK``), gloo on the CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    group = Group(launched_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not group.active:
        return group
    device = group.device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        group.joined = True
    return group


def leave(group: Group) -> None:
    if group.joined and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def joined(device_name: str) -> Iterator[Group]:
    group = join(device_name)
    try:
        yield group
    finally:
        leave(group)


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another process died (its own error is the one to show)."""
    return isinstance(exc, PeerFailed) or (
        isinstance(exc, RuntimeError) and any(mark in str(exc) for mark in PEER_FAILURE_MARKS)
    )


@contextlib.contextmanager
def peer_failures() -> Iterator[None]:
    """Turn a collective's failure because another process died into ``PeerFailed``."""
    try:
        yield
    except RuntimeError as exc:
        if is_peer_failure(exc):
            raise PeerFailed("another process of this run failed (its error is above)") from None
        raise


class NetworksInDDP:
    """While entered, each child network of ``model`` with trainable weights is its own DDP wrapper.

    A group of one wraps nothing. ``plain()`` puts the unwrapped networks back for a moment, for what only rank 0
    does (checkpoints, previews): the state dict keeps its keys, and no rank waits for a collective it never
    joins.
    """

    def __init__(self, model: nn.Module, group: Group, device: torch.device):
        self.model, self.group, self.device = model, group, device
        self.networks: dict[str, nn.Module] = {}
        self.wrappers: dict[str, DistributedDataParallel] = {}

    def __enter__(self) -> NetworksInDDP:
        if self.group.active:
            loose = [name for name, p in self.model.named_parameters(recurse=False) if p.requires_grad]
            if loose:
                raise UserError(
                    f"{type(self.model).__name__} keeps trainable weights outside its child networks ({loose[0]}); "
                    f"training with several processes wraps each child network in DDP, so move them into one"
                )
            for name, child in self.model.named_children():
                if any(p.requires_grad for p in child.parameters()):
                    ids = [self.device.index] if self.device.type == "cuda" else None
                    self.networks[name] = child
                    self.wrappers[name] = DistributedDataParallel(child, device_ids=ids)
            self._install(self.wrappers)
        return self

    def __exit__(self, *exc) -> None:
        self._install(self.networks)
        self.networks, self.wrappers = {}, {}

    def _install(self, modules: dict[str, nn.Module]) -> None:
        for name, module in modules.items():
            setattr(self.model, name, module)

    @contextlib.contextmanager
    def plain(self) -> Iterator[nn.Module]:
        self._install(self.networks)
        try:
            yield self.model
        finally:
            self._install(self.wrappers)


def rank_zero_speaks(command: Callable[..., int]) -> Callable[..., int]:
    """Under torchrun every process runs the same command and would print the same lines: only rank 0 talks.

    The other ranks' output is dropped and their ``UserError``s (the same as rank 0's, or ``PeerFailed``) end
    them with the usual exit code; a bug still shows its traceback on the rank it happened on. Such a rank
    lingers before exiting: torchrun stops every process as soon as one fails, and rank 0, which may be
    checking the same bad input, must get to say why first. (Inside training, rank 0 ignores torchrun's
    SIGTERM once the run is over, so a NaN or a signal needs no lingering.)"""

    @functools.wraps(command)
    def wrapper(*args, **kwargs) -> int:
        if launched_rank() == 0:
            return command(*args, **kwargs)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return command(*args, **kwargs)
        except KeyboardInterrupt:
            return EXIT_CTRL_C
        except UserError:
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(LINGER_SECONDS)  # torchrun ends it (SIGTERM) once rank 0 has spoken and exited
            return EXIT_BAD_INPUT

    return wrapper
