"""Conditional VAE (Sohn et al. 2015): the VAE of ``vae.py`` with the class label given to both networks.

The encoder sees the label as K one-hot image planes stacked on the image, the decoder as a one-hot vector
beside z (the Autoencoder builds its nets with these K extra inputs whenever the config has ``num_classes``).
The loss, its options and the KL warm-up are the VAE's, unchanged: recon(x | z, y) + beta * KL(q(z | x, y) ||
N(0, I)), so the ELBO is a bound on log p(x | y). Because the decoder is told the class, z is free to hold
what the label does not say — the style — and one z decoded with every label draws every digit in one hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import ConditionalConfig
from .vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig, ConditionalConfig):
    pass


class CVAE(VAE):
    """``posterior(x, labels)``, ``encode(x, labels)``, ``decode_logits(z, labels)``, ``decode(z, labels)``;
    ``labels=None`` = classes in equal shares (see ``Generator``)."""

    name = "cvae"
    title = "Conditional VAE"
    Config = CVAEConfig

    def _one_hot(self, n: int, labels) -> torch.Tensor:
        return F.one_hot(self.labels_for(n, labels), self.config.num_classes).float()

    def posterior(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        planes = self._one_hot(len(x), labels)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return super().posterior(torch.cat([x, planes.to(x.dtype)], 1))

    def encode(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return self.posterior(x, labels)[0]

    def decode_logits(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        return super().decode_logits(torch.cat([z, self._one_hot(len(z), labels).to(z.dtype)], 1))

    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z, labels))
