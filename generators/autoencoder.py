"""Plain autoencoder: the VAE's encoder and decoder with a deterministic code and no KL term.

``sample()`` decodes z ~ N(0, I) on purpose. Nothing in AE training pulls the codes towards that
prior, so most prior draws land in the gaps between the regions the encoder actually uses and decode
to smeared non-digits. The dashboard shows exactly this next to the VAE, whose KL term closes the gaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import MAX_EXTRA_CONVS, MAX_HIDDEN_DIM, MAX_LR, MAX_WIDTH, Generator, ModelConfig, adam
from .errors import UserError
from .limits import checked_float, checked_int
from .nets import BroadcastDecoder, ConvDecoder, ConvEncoder


@dataclass
class AutoencoderConfig(ModelConfig):
    base_width: int = field(
        default=32, metadata={"help": "channels of the first conv stage (doubles per stage)", "tiny": 8}
    )
    hidden_dim: int = field(default=256, metadata={"help": "width of the fully connected layer", "tiny": 32})
    extra_convs: int = field(
        default=0,
        metadata={"help": "extra 3x3 conv layers per stage, encoder and decoder (a deeper stack; 0 = textbook)"},
    )
    decoder: str = field(
        default="conv",
        metadata={
            "choices": ("conv", "broadcast"),
            "help": "conv: the mirror of the encoder (transposed convs); broadcast: z and pixel coordinates at "
            "every pixel, then three 3x3 convs of --base-width channels at full resolution (Watters et al. 2019; "
            "for small objects)",
        },
    )
    recon: str = field(
        default="bce",
        metadata={"choices": ("bce", "mse"), "help": "reconstruction loss: Bernoulli (BCE) or squared error"},
    )
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decoder not in ("conv", "broadcast"):
            raise UserError(f"--decoder must be conv or broadcast, got {self.decoder!r}")
        if self.recon not in ("bce", "mse"):
            raise UserError(f"--recon must be bce or mse, got {self.recon!r}")
        if self.base_width < 1 or self.hidden_dim < 1 or self.lr <= 0:
            raise UserError("--base-width, --hidden-dim and --lr must be positive")
        if self.extra_convs < 0:
            raise UserError(f"--extra-convs must be >= 0, got {self.extra_convs}")
        checked_int("--base-width", self.base_width, 1, MAX_WIDTH)
        checked_int("--hidden-dim", self.hidden_dim, 1, MAX_HIDDEN_DIM)
        checked_int("--extra-convs", self.extra_convs, 0, MAX_EXTRA_CONVS)
        checked_float("--lr", self.lr, 0, MAX_LR, low_open=True)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-image loss summed over pixels, shape (N,): BCE = -log p(x|z) of a Bernoulli decoder; MSE = sum of squares."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - x) ** 2
    return per_pixel.flatten(1).sum(1)


class Autoencoder(Generator):
    """Deterministic conv autoencoder. Loss: reconstruction summed over pixels, averaged over the batch."""

    name = "ae"
    title = "Autoencoder"
    Config = AutoencoderConfig
    has_encoder = True
    code_multiplier = 1  # the VAE's encoder head outputs (mu, log sigma^2), twice as many numbers

    def __init__(self, config: AutoencoderConfig):
        super().__init__(config)
        # a class-conditional subclass (config.num_classes) feeds one-hot labels: as image planes beside x, beside z
        classes = self.capabilities_for(config).num_classes or 0
        channels, height, width = config.image_shape
        self.encoder = ConvEncoder(
            (channels + classes, height, width), config.base_width, config.hidden_dim, config.extra_convs
        )
        self.to_code = nn.Linear(config.hidden_dim, config.latent_dim * self.code_multiplier)
        if config.decoder == "broadcast":
            self.decoder = BroadcastDecoder(config.image_shape, config.latent_dim + classes, config.base_width)
        else:
            self.decoder = ConvDecoder(
                config.image_shape,
                config.latent_dim + classes,
                config.base_width,
                config.hidden_dim,
                config.extra_convs,
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_code(self.encoder(x))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image, summed over pixels: Bernoulli (BCE) or unit-variance Gaussian (MSE) decoder."""
        loss = reconstruction_loss(logits, x, self.config.recon)  # BCE: -log p(x|z); MSE: the sum of squares
        if self.config.recon == "bce":
            return -loss
        return -0.5 * loss - 0.5 * x[0].numel() * math.log(2 * math.pi)

    @property
    def likelihood_name(self) -> str:
        if self.config.recon == "bce":
            return "Bernoulli decoder on grey levels in [0, 1]"
        return "Gaussian decoder with unit variance (recon=mse)"

    def configure_optimizers(self, train_cfg) -> dict[str, torch.optim.Optimizer]:
        return {"adam": adam(self.parameters(), lr=self.config.lr)}

    def training_step(self, batch, optimizers) -> dict[str, float]:
        x = batch[0]
        loss = reconstruction_loss(self.decode_logits(self.encode(x)), x, self.config.recon).mean()
        optimizers["adam"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["adam"].step()
        return {"loss": loss.item(), "recon": loss.item()}
