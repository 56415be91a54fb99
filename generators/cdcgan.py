"""Conditional DCGAN: the DCGAN of ``dcgan.py`` with the class label given to G and a projection discriminator.

- G sees the label as a one-hot vector beside z (its first, fully connected layer thus adds a learned
  per-class embedding);
- D is the DCGAN discriminator with a projection head (Miyato & Koyama, ICLR 2018): logit(x, y) =
  psi(phi(x)) + <embed(y), phi(x)>, where phi(x) are D's last features. The inner product asks "is this a
  real image *of class y*", which trains better than feeding y to D as an input (Miyato & Koyama, table 1).
Every DCGAN option applies unchanged (losses, EMA of G, DiffAugment, spectral norm — also on the embedding,
the R1 penalty, two learning rates), and so does the BatchNorm calibration for sampling (on classes in equal shares).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .base import ConditionalConfig, balanced_labels
from .dcgan import DCGAN, DCGANConfig, DCGANDiscriminator, DCGANGenerator


@dataclass
class CDCGANConfig(DCGANConfig, ConditionalConfig):
    pass


def _labels_or_balanced(labels: torch.Tensor | None, n: int, num_classes: int, device) -> torch.Tensor:
    return balanced_labels(n, num_classes).to(device) if labels is None else labels


class ConditionalGenerator(DCGANGenerator):
    """(z, y) -> image: the DCGAN generator fed [z, one_hot(y)]."""

    def __init__(self, cfg: CDCGANConfig):
        super().__init__(dataclasses.replace(cfg, latent_dim=cfg.latent_dim + cfg.num_classes))
        self.num_classes = cfg.num_classes

    def forward(self, z, labels=None):
        labels = _labels_or_balanced(labels, len(z), self.num_classes, z.device)
        return super().forward(torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], 1))


class ProjectionDiscriminator(DCGANDiscriminator):
    """(x, y) -> logit: the DCGAN discriminator's linear head plus the projection <embed(y), phi(x)>."""

    def __init__(self, cfg: CDCGANConfig):
        super().__init__(cfg)
        self.num_classes = cfg.num_classes
        features = self.net[-1].in_features
        embed = nn.Embedding(cfg.num_classes, features)
        nn.init.normal_(embed.weight, std=1 / math.sqrt(features))  # the scale of the linear head's weights
        self.embed = spectral_norm(embed) if cfg.spectral_norm else embed

    def forward(self, x, labels=None):
        phi = self.net[:-1](x)
        labels = _labels_or_balanced(labels, len(x), self.num_classes, x.device)
        return self.net[-1](phi).view(-1) + (self.embed(labels) * phi).sum(1)


class CDCGAN(DCGAN):
    """``decode(z, labels)``, ``sample(n, generator, labels)``, ``realness(images, labels)``; ``labels=None`` =
    classes in equal shares (see ``Generator``)."""

    name = "cdcgan"
    title = "Conditional DCGAN"
    Config = CDCGANConfig
    generator_net = ConditionalGenerator
    discriminator_net = ProjectionDiscriminator

    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        return (self.sampling_generator(z, self.labels_for(len(z), labels)) + 1) / 2

    @torch.no_grad()
    def realness(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """D's logit for images in [0, 1] judged as images of class ``labels``, without augmentation."""
        return self.discriminator(images.to(self.device) * 2 - 1, self.labels_for(len(images), labels)).flatten()
