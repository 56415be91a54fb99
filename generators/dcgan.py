"""DCGAN (Radford et al. 2016): strided (transposed) convolutions, BatchNorm, ReLU in G, LeakyReLU(0.2) in D,
no pooling, trained with the non-saturating loss and Adam(2e-4, beta1 = 0.5).

The textbook recipe is the default. Options that help on small data sets are named fields, recorded in
the run config: an exponential moving average of G (``--ema``), DiffAugment translation/cutout applied to
every image D sees (``--diffaug``, Zhao et al. 2020), spectral norm in D, the R1 gradient penalty on real
images (``--r1``, Mescheder et al. 2018), the hinge loss and two time-scale learning rates (``--lr-g`` /
``--lr-d``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.quasirandom import SobolEngine

from .base import MAX_LR, MAX_WIDTH, Generator, ModelConfig, adam
from .errors import UserError
from .limits import checked_float, checked_int
from .nets import Flatten, downsampling_sizes, stage_widths

AUGMENTATIONS = ("translation", "cutout")
MAX_R1 = 1e6
R1_EVERY = 4  # lazy regularisation (Karras et al. 2020): the penalty, scaled by 4, on every 4th D step
BATCHNORM_CALIBRATION_SEED = 4321
BATCHNORM_CALIBRATION_LATENTS = 256
EMA_UPDATES_OF_OLD_RUNS = 10**9  # far past the warm-up: the configured decay applies


@dataclass
class DCGANConfig(ModelConfig):
    latent_dim: int = field(default=64, metadata={"help": "size of the latent code z", "tiny": 4})
    g_width: int = field(default=64, metadata={"help": "channels of G's last stage (doubles towards z)", "tiny": 8})
    d_width: int = field(default=64, metadata={"help": "channels of D's first stage (doubles per stage)", "tiny": 8})
    loss: str = field(default="ns", metadata={"choices": ("ns", "hinge"), "help": "non-saturating or hinge loss"})
    lr_g: float = field(default=2e-4, metadata={"help": "Adam learning rate of G"})
    lr_d: float = field(default=2e-4, metadata={"help": "Adam learning rate of D"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1 of both networks"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2 of both networks"})
    ema: float = field(
        default=0.0,
        metadata={
            "help": "EMA decay of G's weights used for sampling (0 = off; "
            "warmed up as min(ema, (1+t)/(10+t)) over updates t)"
        },
    )
    diffaug: str = field(default="", metadata={"help": "DiffAugment policy: comma list of translation,cutout"})
    spectral_norm: bool = field(default=False, metadata={"help": "spectral norm in D instead of BatchNorm"})
    r1: float = field(
        default=0.0,
        metadata={
            "help": "weight gamma of the R1 penalty gamma/2 * E|grad D(real)|^2 (0 = off); "
            "D then has no BatchNorm (spectral norm stays if asked for)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in ("ns", "hinge"):
            raise UserError(f"--loss must be ns or hinge, got {self.loss!r}")
        unknown = set(filter(None, self.diffaug.split(","))) - set(AUGMENTATIONS)
        if unknown:
            raise UserError(f"--diffaug knows {', '.join(AUGMENTATIONS)}, not {', '.join(sorted(unknown))}")
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"--ema must be in [0, 1), got {self.ema}")
        if min(self.g_width, self.d_width) < 1 or min(self.lr_g, self.lr_d) <= 0:
            raise UserError("--g-width, --d-width, --lr-g and --lr-d must be positive")
        checked_int("--g-width", self.g_width, 1, MAX_WIDTH)
        checked_int("--d-width", self.d_width, 1, MAX_WIDTH)
        checked_float("--lr-g", self.lr_g, 0, MAX_LR, low_open=True)
        checked_float("--lr-d", self.lr_d, 0, MAX_LR, low_open=True)
        checked_float("--r1", self.r1, 0, MAX_R1)
        checked_float("--beta1", self.beta1, 0, 1, high_open=True)  # Adam's betas must lie in [0, 1)
        checked_float("--beta2", self.beta2, 0, 1, high_open=True)


class DCGANGenerator(nn.Module):
    """z -> fc -> (8*w) x 7 x 7 -> ... -> w x 28 x 28 -> 3x3 conv -> tanh image in [-1, 1] (sizes for 28x28)."""

    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        channels, size, _ = cfg.image_shape
        sizes = downsampling_sizes(size)
        widths = list(reversed(stage_widths(cfg.g_width, len(sizes) + 1)))  # 28x28: [256, 128, 64]
        self.start = (widths[0], sizes[-1], sizes[-1])
        self.fc = nn.Sequential(
            nn.Linear(cfg.latent_dim, widths[0] * sizes[-1] ** 2, bias=False),
            nn.BatchNorm1d(widths[0] * sizes[-1] ** 2),
            nn.ReLU(True),
        )
        layers = []
        for in_ch, out_ch in zip(widths, widths[1:]):  # 256 x 7 x 7 -> 128 x 14 x 14 -> 64 x 28 x 28
            layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(True)]
        layers += [nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh()]  # C x 28 x 28
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(self.fc(z).view(-1, *self.start))


class DCGANDiscriminator(nn.Module):
    """image -> w x 14 x 14 -> 2w x 7 x 7 -> 4w x 7 x 7 -> logit (sizes for 28x28). No BN on the input stage,
    none at all with spectral norm or the R1 penalty (a gradient penalty per image must not mix the batch)."""

    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        channels, size, _ = cfg.image_shape
        sizes = downsampling_sizes(size)
        widths = stage_widths(cfg.d_width, len(sizes) + 1)
        wrap = spectral_norm if cfg.spectral_norm else (lambda m: m)
        layers, in_ch = [], channels
        for i, width in enumerate(widths):  # the last stage keeps the size (3x3, stride 1)
            conv = nn.Conv2d(in_ch, width, 4, 2, 1) if i < len(sizes) else nn.Conv2d(in_ch, width, 3, 1, 1)
            layers.append(wrap(conv))
            if i > 0 and not cfg.spectral_norm and not cfg.r1:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, True))
            in_ch = width
        layers += [Flatten(), wrap(nn.Linear(in_ch * sizes[-1] ** 2, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).view(-1)


def r1_penalty(critic, real: torch.Tensor) -> torch.Tensor:
    """E |grad_x D(x)|^2 over the real images (Mescheder et al. 2018), kept in the graph so D's step descends it:
    it flattens D around the data, which lets an unnormalised D judge fine detail without running away."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Differentiable translation (by up to 1/8 of the size, zero fill) and cutout (a square of half the size)."""
    n, _, h, w = x.shape
    if "translation" in policy:
        shift = max(1, h // 8)
        dy = torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
        dx = torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
        rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
        padded = F.pad(x, (1, 1, 1, 1))
        x = padded.permute(0, 2, 3, 1)[torch.arange(n, device=x.device).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
    if "cutout" in policy:
        half = h // 4
        cy = torch.randint(0, h, (n, 1, 1), device=x.device)
        cx = torch.randint(0, w, (n, 1, 1), device=x.device)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        keep = ((ys - cy).abs() >= half) | ((xs - cx).abs() >= half)
        x = x * keep.unsqueeze(1).to(x.dtype)
    return x


class DCGAN(Generator):
    """Generator + discriminator; ``sample``/``decode`` use the EMA copy of G when ``ema > 0``.

    Sampling runs G in eval mode, so BatchNorm uses stored statistics and an image depends only on its
    latent (not on the batch it is drawn in). Those statistics are recomputed for the sampling network
    whenever the model leaves training (``eval()``): the running averages collected during training lag
    behind G's weights, and an EMA copy of G never had statistics of its own at all.
    """

    name = "dcgan"
    title = "DCGAN"
    Config = DCGANConfig
    has_discriminator = True
    objective = "d_loss"  # the game's value as D estimates it (G's loss is the other player's view of it)
    generator_net: type[nn.Module] = DCGANGenerator  # a conditional subclass swaps in nets that take labels
    discriminator_net: type[nn.Module] = DCGANDiscriminator

    def __init__(self, config: DCGANConfig):
        super().__init__(config)
        self.generator = self.generator_net(config)
        self.discriminator = self.discriminator_net(config)
        self.generator_ema = None
        if config.ema > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("ema_updates", torch.tensor(0))
        if config.r1 > 0:
            self.register_buffer("d_steps", torch.tensor(0))  # R1 applies on every R1_EVERY-th, also after a resume
        # stored with the weights, so a run saved mid-training is recalibrated when it is loaded
        self.register_buffer("batchnorm_calibrated", torch.tensor(True))
        # oneDNN's (transposed) convolutions and their gradients are faster on the CPU in NHWC (6-15 % per step)
        self.to(memory_format=torch.channels_last)

    @property
    def sampling_generator(self) -> DCGANGenerator:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.sampling_generator(z) + 1) / 2

    def train(self, mode: bool = True) -> DCGAN:
        super().train(mode)
        if not mode and not self.batchnorm_calibrated:
            self.recalibrate_batchnorm()
        return self

    @torch.no_grad()
    def recalibrate_batchnorm(self) -> None:
        """Set the sampling G's BatchNorm statistics to those of a fixed set of quasi-random latents.

        The latents are scrambled Sobol points mapped through the normal quantile: they fill N(0, I) evenly, so
        256 of them score within 1.5 % of the FID of 4 096 random draws (n = 2 000; 512 random ones cost about
        10 %) in one forward pass, and each epoch's preview stays cheap. Deterministic (own seed,
        the global RNG is untouched).
        """
        net = self.sampling_generator
        norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # the statistics of the calibration batch itself
        net.train()
        sobol = SobolEngine(self.config.latent_dim, scramble=True, seed=BATCHNORM_CALIBRATION_SEED)
        uniform = sobol.draw(BATCHNORM_CALIBRATION_LATENTS).clamp(1e-6, 1 - 1e-6)
        net(torch.special.ndtri(uniform).to(self.device))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        net.train(self.training)
        self.batchnorm_calibrated.fill_(True)

    def upgrade_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Runs saved before the EMA warm-up existed have no update counter: their average is past any warm-up.
        Runs saved before calibration existed have no flag: they are calibrated when they leave training."""
        state = dict(state)
        if self.generator_ema is not None:
            state.setdefault("ema_updates", torch.tensor(EMA_UPDATES_OF_OLD_RUNS))
        state.setdefault("batchnorm_calibrated", torch.tensor(False))
        return state

    def configure_optimizers(self, train_cfg) -> dict[str, torch.optim.Optimizer]:
        cfg, betas = self.config, (self.config.beta1, self.config.beta2)
        return {
            "g": adam(self.generator.parameters(), lr=cfg.lr_g, betas=betas),
            "d": adam(self.discriminator.parameters(), lr=cfg.lr_d, betas=betas),
        }

    def parameter_counts(self) -> dict[str, int]:
        """G and D separately (the EMA copy of G is not trained, so it is not counted)."""
        count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
        return {"G": count(self.generator), "D": count(self.discriminator)}

    @torch.no_grad()
    def realness(self, images: torch.Tensor) -> torch.Tensor:
        """D's logit for images in [0, 1] (higher = judged more real), without augmentation."""
        return self.discriminator(images.to(self.device) * 2 - 1).flatten()

    def critic(self, images: torch.Tensor, **conditioning) -> torch.Tensor:
        images = diff_augment(images, self.config.diffaug) if self.config.diffaug else images
        return self.discriminator(images, **conditioning)

    def training_step(self, batch, optimizers) -> dict[str, float]:
        real, conditioning = batch[0] * 2 - 1, self.label_kwargs(batch[1])
        z = torch.randn(real.size(0), self.config.latent_dim, device=real.device)
        fake = self.generator(z, **conditioning)

        d_real, d_fake = self.critic(real, **conditioning), self.critic(fake.detach(), **conditioning)
        if self.config.loss == "hinge":
            d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        else:
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        d_objective = d_loss  # what is logged: the game's value, without the penalty
        if self.config.r1:
            if int(self.d_steps) % R1_EVERY == 0:
                penalty = r1_penalty(lambda x: self.critic(x, **conditioning), real)
                d_objective = d_loss + self.config.r1 / 2 * R1_EVERY * penalty
            self.d_steps.add_(1)
        optimizers["d"].zero_grad(set_to_none=True)
        d_objective.backward()
        optimizers["d"].step()

        d_gen = self.critic(fake, **conditioning)
        g_loss = -d_gen.mean() if self.config.loss == "hinge" else F.softplus(-d_gen).mean()
        optimizers["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers["g"].step()
        if self.generator_ema is not None:
            self._update_ema()
        self.batchnorm_calibrated.fill_(False)
        return {
            "d_loss": d_loss.item(),
            "g_loss": g_loss.item(),
            "d_real": torch.sigmoid(d_real).mean().item(),
            "d_fake": torch.sigmoid(d_fake).mean().item(),
        }

    @torch.no_grad()
    def _update_ema(self) -> None:
        """Average G's weights with a decay that is warmed up, so that a long horizon (0.999) does not keep the
        random initial weights for thousands of steps of a short CPU run."""
        updates = int(self.ema_updates)
        decay = min(self.config.ema, (1 + updates) / (10 + updates))
        for ema_p, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            ema_p.lerp_(p, 1 - decay)
        self.ema_updates.add_(1)
