"""How a training step computes: ``--precision {auto,fp32,bf16,fp16}`` and ``--compile``.

The model's ``training_step`` does its own forward passes, backward passes and optimizer steps (a GAN does two),
so the harness runs the whole step inside ``StepRunner.step()``:

- **bf16**: the step runs under ``torch.autocast(device, bfloat16)``: matmuls and convolutions compute in
  bfloat16 where the hardware has it (CPUs with AVX-512 BF16 or AMX, CUDA compute capability >= 8.0); losses,
  reductions and everything autocast keeps in fp32 stay fp32. bf16 has fp32's exponent range, so no loss scaling.
- **fp16** (CUDA GPUs older than Ampere): autocast to float16 plus a ``GradScaler``. The model calls
  ``loss.backward()`` and ``optimizer.step()`` itself, so for the duration of the step the optimizers it is handed
  are proxies whose ``step`` goes through the scaler, and ``Tensor.backward`` of a scalar loss multiplies it by
  the scaler's scale (both undone when the step ends). One ``scaler.update()`` per step, after all optimizers.
- **fp32**: as before, nothing wraps the step.

Autocast keeps the low-precision copy of each weight it casts until its region ends, so in bf16 and fp16 every
optimizer's ``step`` also drops those copies: a network updated within a step (a GAN's D, which G's loss then goes
through) is run with its new weights, as in fp32.

In bf16, fp16 or compiled, a model with convolutions is put in the channels-last memory format (NHWC), which
oneDNN's convolutions and their gradients run faster in.

Weights, gradients, optimizer state and checkpoints stay fp32 in every mode (autocast casts copies of the
weights for each op), so a run's files are the same and a run can be resumed in another precision.

``--compile``: every child network with trainable weights (an autoencoder's encoder, code head and decoder; a
GAN's G and D) is swapped for its ``torch.compile``d self for the duration of each training step, not the whole
step (a GAN step's two backward passes and optimizer steps stay eager). The swap is undone after the step, so
previews, checkpoints (same state-dict keys) and sampling use the plain networks. When the backend cannot
compile on this machine (no C++ compiler, an unsupported platform) a probe says so in one line before training,
and the run goes on uncompiled.

``auto`` (see ``auto_precision``): bf16 where the device computes it natively and the model is one that was
measured faster in bf16 on such a machine (``BF16_FASTER``), fp16 on CUDA GPUs without bf16, fp32 elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The models whose training step ``python -m benchmarks --only precision`` measured faster under bf16 autocast
# than in fp32 on a CPU with native bf16 (BENCHMARKS.md, "Mixed precision and compilation"). On CUDA GPUs with
# bf16 (Ampere and newer) every model takes it: tensor cores make it the fast path there.
BF16_FASTER_ON_CPU = frozenset({"dcgan", "cdcgan", "vae", "cvae", "ae"})


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively: AMX tiles (Sapphire Rapids and newer Xeons) or AVX-512 BF16
    (Cooper Lake, AMD Zen 4 and newer). Read from torch's own checks, else from /proc/cpuinfo's flags."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if any(check is not None for check in checks):
        return any(check() for check in checks if check is not None)
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (and fast)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return cpu_has_bf16()
    return False


def auto_precision(device: torch.device, model_name: str) -> tuple[str, str]:
    """What ``--precision auto`` trains ``model_name`` with on ``device``, and why (one clause)."""
    if device.type == "cuda":
        if native_bf16(device):
            return "bf16", "a CUDA GPU with bf16 (compute capability >= 8.0)"
        return "fp16", "a CUDA GPU without bf16 (compute capability < 8.0): fp16 with loss scaling"
    if device.type == "cpu" and native_bf16(device):
        if model_name in BF16_FASTER_ON_CPU:
            return "bf16", "a CPU with native bf16, on which this model's step was measured faster in bf16"
        return "fp32", "not measured faster in bf16 on a CPU"
    return "fp32", f"{device.type} without native bf16"


def resolve_precision(requested: str, device: torch.device, model_name: str) -> tuple[str, str]:
    """The precision a run trains in (fp32, bf16 or fp16) and why."""
    if requested not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r:.40}")
    if requested == "auto":
        return auto_precision(device, model_name)
    if requested != "fp32" and not torch.amp.autocast_mode.is_autocast_available(device.type):
        raise UserError(f"--precision {requested} is not available on {device.type}: use fp32")
    if requested == "fp16" and device.type == "cpu":
        return requested, "asked for (fp16 is meant for CUDA GPUs; on a CPU it is emulated and slow)"
    if requested == "bf16" and not native_bf16(device):
        return requested, f"asked for (this {device.type} has no native bf16: it is emulated and slow)"
    return requested, "asked for"


@functools.cache
def compile_problem(device_type: str) -> str | None:
    """None when ``torch.compile`` works on this machine, else the first line of why not (probed once)."""
    try:
        probe = torch.compile(lambda x: torch.relu(x) * 2 + 1, dynamic=False)
        probe(torch.linspace(-1, 1, 8, device=device_type))
    except Exception as exc:  # any backend failure: no compiler, unsupported platform or Python
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0][:160] if text else ''}"
    return None


class _AutocastOptimizer:
    """An optimizer as the model sees it during an autocast step.

    Autocast keeps the low-precision copy it casts of each weight until the autocast region ends. A step that
    updates a network and then runs it again (a GAN's G step goes through the D it has just updated) would compute
    with the copy of the weights from before the update: so after every ``step`` the copies are dropped. In fp16,
    ``step`` also goes through the grad scaler.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None):
        self._optimizer, self._scaler = optimizer, scaler

    def step(self, closure=None):
        if self._scaler is None:
            result = self._optimizer.step(closure)
        elif closure is not None:
            raise UserError("fp16 training cannot scale an optimizer step with a closure: use bf16 or fp32")
        else:
            result = self._scaler.step(self._optimizer)
        torch.clear_autocast_cache()
        return result

    def __getattr__(self, name):
        return getattr(self._optimizer, name)


@dataclass
class Speed:
    """What a run's steps ran with, as recorded in the run's info."""

    requested: str
    precision: str
    reason: str
    compiled: bool
    channels_last: bool

    def record(self) -> dict:
        return {
            "train_precision": self.precision,
            "train_precision_requested": self.requested,
            "train_precision_reason": self.reason,
            "compiled": self.compiled,
            "channels_last": self.channels_last,
        }


class StepRunner:
    """Runs a model's training step in the run's precision, with its networks compiled when asked.

    ``with runner.step(optimizers) as opts: model.training_step(batch, opts)``; fp32 without compilation
    enters nothing. ``say`` prints the one-line notes (a compile fallback); rank 0's, under torchrun.
    """

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        precision: str = "fp32",
        compile: bool = False,
        model_name: str | None = None,
        say=None,
    ):
        self.model, self.device = model, device
        used, reason = resolve_precision(precision, device, model_name or getattr(model, "name", ""))
        say = say or (lambda text: print(text, file=sys.stderr))
        if compile and (problem := compile_problem(device.type)) is not None:
            say(f"note: --compile: torch.compile cannot compile on this machine ({problem}); training uncompiled")
            compile = False
        self.dtype = DTYPES.get(used)
        self.scaler = torch.amp.GradScaler(device.type) if used == "fp16" else None
        self.compile = compile
        self._compiled: dict[int, nn.Module] = {}  # id of a child network (or its DDP wrapper) -> compiled self
        # oneDNN's convolutions and their gradients run faster on NHWC tensors, the more so in bf16 (the DCGAN
        # family is NHWC already); the weights keep their values, and a checkpoint stores them contiguous
        channels_last = (used != "fp32" or compile) and any(isinstance(m, nn.Conv2d) for m in model.modules())
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.speed = Speed(precision, used, reason, compile, channels_last=channels_last)
        if compile:
            import torch._dynamo as dynamo

            dynamo.config.suppress_errors = True  # a frame that fails to compile runs eagerly instead
            # each network meets a few guard variants (train/eval, real/fake inputs, DDP); leave room for them
            dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 32)

    @property
    def plain(self) -> bool:
        return self.dtype is None and not self.compile

    @contextlib.contextmanager
    def step(self, optimizers: dict[str, torch.optim.Optimizer]) -> Iterator[dict]:
        if self.plain:
            yield optimizers
            return
        with contextlib.ExitStack() as stack:
            if self.compile:
                stack.enter_context(self._compiled_networks())
            if self.dtype is not None:
                stack.enter_context(torch.autocast(self.device.type, dtype=self.dtype))
                optimizers = {name: _AutocastOptimizer(opt, self.scaler) for name, opt in optimizers.items()}
            if self.scaler is not None:
                stack.enter_context(_scaled_backward(self.scaler))
            yield optimizers
        if self.scaler is not None:
            self.scaler.update()

    @contextlib.contextmanager
    def _compiled_networks(self) -> Iterator[None]:
        children = {
            name: child
            for name, child in self.model.named_children()
            if any(p.requires_grad for p in child.parameters())
        }
        for name, child in children.items():
            compiled = self._compiled.get(id(child))
            if compiled is None:
                compiled = self._compiled[id(child)] = torch.compile(child, dynamic=False)
            setattr(self.model, name, compiled)
        try:
            yield
        finally:
            for name, child in children.items():
                setattr(self.model, name, child)


@contextlib.contextmanager
def _scaled_backward(scaler: torch.amp.GradScaler) -> Iterator[None]:
    """While entered, ``loss.backward()`` of a scalar loss back-propagates ``loss * scale`` (the model's own call)."""
    original = torch.Tensor.backward

    def backward(self, gradient=None, *args, **kwargs):
        if gradient is None and self.numel() == 1:
            return original(scaler.scale(self), None, *args, **kwargs)
        return original(self, gradient, *args, **kwargs)

    torch.Tensor.backward = backward
    try:
        yield
    finally:
        torch.Tensor.backward = original
