"""The Generator interface every model implements, and the config base class beside it.

Images crossing any public boundary are float tensors in [0, 1] with shape (N, C, H, W). A model
owns its losses and optimizers (a GAN has two), so the training harness can stay model-agnostic.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from .errors import UserError
from .limits import checked_float, checked_int

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256
MAX_LATENT_DIM = 1024
MAX_WIDTH = 1024  # channels of a conv stage (base/g/d width); it doubles per stage
MAX_HIDDEN_DIM = 16_384
MAX_EXTRA_CONVS = 8
MAX_LR = 1e6  # huge learning rates are allowed (they diverge, and the harness says so); NaN and inf are not
MAX_TEXT_FIELD = 200


@dataclass
class ModelConfig:
    """Fields shared by every model. Subclasses add their own; each field becomes a CLI option."""

    image_shape: tuple[int, int, int] = field(default=(1, 28, 28), metadata={"cli": False})
    latent_dim: int = field(default=16, metadata={"help": "size of the latent code z", "tiny": 4})

    def __post_init__(self) -> None:
        """Check every field's type (stored configs are untrusted JSON), then the shared ranges."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            flag = "--" + f.name.replace("_", "-")
            if kind == "bool" and not isinstance(value, bool):
                raise UserError(f"{flag} must be true or false, got {value!r}")
            if kind == "int":
                checked_int(flag, value, -(2**63), 2**63 - 1)
            if kind == "float":
                setattr(self, f.name, checked_float(flag, value, -math.inf, math.inf))
            if kind == "str" and not (isinstance(value, str) and len(value) <= MAX_TEXT_FIELD):
                raise UserError(f"{flag} must be a text of at most {MAX_TEXT_FIELD} characters, got {value!r:.80}")
        if not (isinstance(self.image_shape, (tuple, list)) and len(self.image_shape) == 3):
            raise UserError(f"image_shape must be (channels, height, width), got {self.image_shape!r:.80}")
        self.image_shape = tuple(checked_int("image_shape", v, 0, MAX_IMAGE_SIZE * 4) for v in self.image_shape)
        channels, height, width = self.image_shape
        if channels not in (1, 3):
            raise UserError(f"images must have 1 or 3 channels, got {channels}")
        if height != width or not MIN_IMAGE_SIZE <= height <= MAX_IMAGE_SIZE or height % 2:
            raise UserError(
                f"image size {height}x{width} is not supported: use a square, even size "
                f"between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} (e.g. 28, 32 or 64)"
            )
        if self.latent_dim < 1:
            raise UserError(f"--latent-dim must be at least 1, got {self.latent_dim}")
        checked_int("--latent-dim", self.latent_dim, 1, MAX_LATENT_DIM)

    @classmethod
    def tiny_options(cls) -> dict:
        """Options for a tiny, fast network of this model (each field's ``tiny`` metadata): for tests and smoke
        runs, so a new model is covered by every test that loops over the registry."""
        return {f.name: f.metadata["tiny"] for f in dataclasses.fields(cls) if "tiny" in f.metadata}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"config has fields {unknown} that {cls.__name__} does not know")
        return cls(**values)


@dataclass
class ConditionalConfig(ModelConfig):
    """Mixed into the config of a class-conditional model: the harness sets ``num_classes`` from the dataset."""

    num_classes: int = field(default=10, metadata={"cli": False, "help": "number of classes (from the dataset)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 1:
            raise UserError(f"a class-conditional model needs at least one class, got num_classes={self.num_classes}")


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, so code outside ``generators/`` asks this and never a model's name.

    - ``latent_shape``: ``(latent_dim,)``: every code is flat, ``(N, latent_dim)`` (``prior``, ``encode``,
      ``posterior``), which the maps, samplers, compression and disentanglement read.
    - ``encoder``: ``encode(x) -> z`` exists (maps, reconstruction by encode-decode, GMM/two-stage samplers).
    - ``posterior``: ``posterior(x) -> (mu, logvar)``, ``decode_logits(z)`` and ``log_likelihood(logits, x)``
      exist, so the ELBO, KL per dimension and active units can be computed.
    - ``discriminator``: ``realness(x) -> logits`` exists and the history logs ``d_real``/``d_fake``
      (loss-balance diagnostics).
    - ``beta``: the config has a float field ``beta``, the weight of the KL term, which the β views read (β sweeps,
      the β findings, the run's label).
    - ``rate_distortion``: every training step logs ``kl`` (the rate, nats per image) and ``recon`` (the
      distortion, the reconstruction loss per image): the rate–distortion view reads them from the history.
    - ``num_classes``: the number of classes a class-conditional model is conditioned on (None: unconditional).
    - ``objective``: the history column of the model's own training objective (stability is judged on it).

    A class declares them with its flags (``has_encoder``, ``has_beta``, ``logs_rate_distortion``, ...);
    registering it checks each declared convention on a tiny model (``generators.conventions``).
    """

    title: str
    latent_shape: tuple[int, ...]
    encoder: bool = False
    posterior: bool = False
    discriminator: bool = False
    beta: bool = False
    rate_distortion: bool = False
    num_classes: int | None = None
    objective: str = "loss"

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    @property
    def adversarial(self) -> bool:
        return self.discriminator


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """Classes in equal shares, deterministic: 0, 1, ..., K-1, 0, 1, ... (int64, shape (n,)).

    What a conditional model is conditioned on when no labels are given, so its samples cover every class
    evenly and any prefix of them is as balanced as it can be."""
    return torch.arange(n) % num_classes


def adam(parameters, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where the parameters' device has it (CPU, CUDA): the same update,
    fewer small kernels, about 5 % of the VAE's step on a 2-core CPU (BENCHMARKS.md)."""
    parameters = list(parameters)
    fused = bool(parameters) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=fused or None)


class Generator(nn.Module):
    """A generative image model: sample from a prior, decode latents, train itself one batch at a time.

    A subclass sets ``name``, ``title`` and ``Config``, and the capability flags it has (see ``Capabilities``).

    Class-conditional models (``capabilities.conditional``; their config has ``num_classes``, which the
    harness fills in from the dataset) take the class labels as well: ``sample(n, generator, labels)``,
    ``decode(z, labels)`` and, with an encoder, ``encode(x, labels)`` (also ``posterior``/``decode_logits``).
    ``labels`` is an int64 tensor of n class indices or one int for all n; ``None`` means classes in equal
    shares (``balanced_labels``), so code that knows nothing of classes still gets even samples — but code
    that has the true labels of images (reconstruction, likelihood, sampler fitting) must pass them.
    ``labels_for`` checks labels; ``label_kwargs`` passes a training batch's labels to a conditional model's
    networks only. Unconditional models: ``sample(..., labels=...)`` is refused with a ``UserError``, and their
    ``decode``/``encode`` take no labels.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]
    has_encoder: ClassVar[bool] = False
    has_posterior: ClassVar[bool] = False
    has_discriminator: ClassVar[bool] = False
    has_beta: ClassVar[bool] = False  # its config's float field ``beta`` weights the KL term (see Capabilities)
    logs_rate_distortion: ClassVar[bool] = False  # each training step logs ``kl`` and ``recon`` (see Capabilities)
    objective: ClassVar[str] = "loss"  # the history column holding the quantity the model's training minimises

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    @classmethod
    def capabilities_for(cls, config: ModelConfig) -> Capabilities:
        """The capabilities of a model of this class built from ``config`` (no weights needed)."""
        return Capabilities(
            title=cls.title,
            latent_shape=(config.latent_dim,),
            encoder=cls.has_encoder,
            posterior=cls.has_posterior,
            discriminator=cls.has_discriminator,
            beta=cls.has_beta,
            rate_distortion=cls.logs_rate_distortion,
            num_classes=getattr(config, "num_classes", None),
            objective=cls.objective,
        )

    @property
    def capabilities(self) -> Capabilities:
        return self.capabilities_for(self.config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents z ~ N(0, I), drawn on the CPU from ``generator`` so results do not depend on the device."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return z.to(self.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def labels_for(self, n: int, labels: torch.Tensor | int | None = None) -> torch.Tensor | None:
        """The labels to condition ``n`` images on, checked: None for an unconditional model (which refuses
        labels), else ``labels`` (one int = all n of that class) or, when None, classes in equal shares."""
        classes = self.capabilities.num_classes
        if classes is None:
            if labels is not None:
                raise UserError(f"{self.name} is not class-conditional: it cannot be given class labels")
            return None
        if labels is None:
            return balanced_labels(n, classes).to(self.device)
        labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        labels = labels.expand(n) if labels.ndim == 0 else labels
        if labels.shape != (n,):
            raise UserError(f"expected {n} class labels, got a tensor of shape {tuple(labels.shape)}")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < classes:
            raise UserError(
                f"class labels must be between 0 and {classes - 1}, got {int(labels.min())}..{int(labels.max())}"
            )
        return labels

    def label_kwargs(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"labels": labels}`` for a conditional model, ``{}`` for an unconditional one (whose training batches
        carry labels it ignores): lets shared code such as a training step call either kind of network."""
        return {"labels": labels} if self.capabilities.conditional else {}

    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        z = self.prior(n, generator)
        labels = self.labels_for(n, labels)
        return self.decode(z) if labels is None else self.decode(z, labels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no encoder")

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters by network, for fairness tables (a GAN reports G and D separately)."""
        return {"model": sum(p.numel() for p in self.parameters() if p.requires_grad)}

    def upgrade_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fill in what weights saved by an older version of the model lack (e.g. a buffer added since), so old
        runs keep loading; the default changes nothing."""
        return state

    def configure_optimizers(self, train_cfg) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def training_step(self, batch, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        """One optimisation step on ``batch = (images in [0, 1], labels)``; returns the losses to log."""
        raise NotImplementedError
