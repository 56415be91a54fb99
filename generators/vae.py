"""Variational autoencoder (Kingma & Welling 2014) with a beta-weighted KL term (Higgins et al. 2017).

Loss per batch = mean over images of [ recon(x) + beta * KL(q(z|x) || N(0, I)) ], where recon and KL are
each **summed** over pixels / latent dimensions and then **averaged** over the batch. With BCE this is the
negative ELBO in nats per image (for beta = 1); averaging over pixels instead would silently re-weight
the KL by 1/(H*W) and is the most common VAE bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .autoencoder import Autoencoder, AutoencoderConfig, reconstruction_loss
from .errors import UserError
from .limits import MAX_STEPS, checked_float, checked_int

MAX_BETA = 1e6


@dataclass
class VAEConfig(AutoencoderConfig):
    beta: float = field(default=1.0, metadata={"help": "weight of the KL term (1 = the ELBO)"})
    kl_warmup_steps: int = field(default=0, metadata={"help": "ramp beta linearly from 0 over this many steps"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0:
            raise UserError(f"--beta must be >= 0, got {self.beta}")
        if self.kl_warmup_steps < 0:
            raise UserError(f"--kl-warmup-steps must be >= 0, got {self.kl_warmup_steps}")
        checked_float("--beta", self.beta, 0, MAX_BETA)
        checked_int("--kl-warmup-steps", self.kl_warmup_steps, 0, MAX_STEPS)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per latent dimension, shape (N, latent_dim)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


class VAE(Autoencoder):
    """Conv VAE: encoder -> (mu, log sigma^2), z = mu + sigma * eps, decoder -> Bernoulli logits."""

    name = "vae"
    title = "VAE"
    Config = VAEConfig
    has_posterior = True
    has_beta = True
    logs_rate_distortion = True
    code_multiplier = 2

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # drives the KL warm-up

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = super().encode(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean: the deterministic code used for maps, interpolation and reconstruction."""
        return self.posterior(x)[0]

    def current_beta(self) -> float:
        warmup = self.config.kl_warmup_steps
        ramp = 1.0 if warmup == 0 else min(1.0, (int(self.steps_done) + 1) / warmup)
        return self.config.beta * ramp

    def training_step(self, batch, optimizers) -> dict[str, float]:
        x, conditioning = batch[0], self.label_kwargs(batch[1])
        mu, logvar = self.posterior(x, **conditioning)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = reconstruction_loss(self.decode_logits(z, **conditioning), x, self.config.recon).mean()
        kl_per_dim = gaussian_kl(mu, logvar).mean(0)
        kl = kl_per_dim.sum()
        beta = self.current_beta()
        loss = recon + beta * kl
        optimizers["adam"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["adam"].step()
        self.steps_done += 1
        logs = {"loss": loss.item(), "recon": recon.item(), "kl": kl.item(), "beta": beta}
        logs.update({f"kl_dim_{i}": v for i, v in enumerate(kl_per_dim.tolist())})
        return logs
