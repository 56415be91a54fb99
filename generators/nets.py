"""Convolutional stacks shared by the models, sized from the image shape.

Each stride-2 stage halves the image (28 -> 14 -> 7, 32 -> 16 -> 8, 64 -> 32 -> 16 -> 8) until it is
8 pixels or smaller or odd; the decoder mirrors the encoder with stride-2 transposed convolutions.
``extra_convs`` deepens every stage with that many 3x3 stride-1 convolutions (0 = the textbook stack,
whose layer names it keeps, so runs saved before the option existed still load).
"""

from __future__ import annotations

import torch
from torch import nn


def downsampling_sizes(size: int) -> list[int]:
    """Spatial sizes after each stride-2 stage: 28 -> [14, 7], 64 -> [32, 16, 8]."""
    sizes = []
    while size > 8 and size % 2 == 0:
        size //= 2
        sizes.append(size)
    return sizes


def same_size_convs(width: int, count: int) -> list[nn.Module]:
    """``count`` 3x3 stride-1 conv + ReLU layers that keep the size and width: depth without resampling."""
    layers = []
    for _ in range(count):
        layers += [nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(inplace=True)]
    return layers


def stage_widths(base_width: int, stages: int) -> list[int]:
    """Channel widths that double at each stage: 32 -> [32, 64, 128]."""
    return [base_width * 2**i for i in range(stages)]


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


class Flatten(nn.Flatten):
    """``nn.Flatten`` whose gradient goes back in its input's memory format.

    Flattening a channels-last activation in (C, H, W) order copies it, and the gradient of the copy comes back
    NCHW-contiguous. The backward of the activation before it (ReLU, LeakyReLU) then reads two layouts at once
    and runs about 10x slower: 0.8 ms instead of < 0.1 ms for D's 64 x 128 x 7 x 7 in a DCGAN step at batch 64,
    which made it the step's slowest elementwise op (BENCHMARKS.md, "Mixed precision and compilation").
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and x.dim() == 4 and not x.is_contiguous():
            if x.is_contiguous(memory_format=torch.channels_last):
                x.register_hook(_channels_last)
        return super().forward(x)


class ConvEncoder(nn.Module):
    """x (C x H x W) -> feature vector of ``hidden_dim``; conv stages then one fully connected layer."""

    def __init__(self, image_shape, base_width: int, hidden_dim: int, extra_convs: int = 0):
        super().__init__()
        channels, size, _ = image_shape
        sizes = downsampling_sizes(size)
        widths = stage_widths(base_width, len(sizes))
        layers, in_ch = [], channels
        for width in widths:  # e.g. 32 x 14 x 14, then 64 x 7 x 7
            layers += [nn.Conv2d(in_ch, width, 4, 2, 1), nn.ReLU(inplace=True), *same_size_convs(width, extra_convs)]
            in_ch = width
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(Flatten(), nn.Linear(in_ch * sizes[-1] ** 2, hidden_dim), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.fc(self.convs(x))


class ConvDecoder(nn.Module):
    """z -> image logits (C x H x W); the mirror image of ``ConvEncoder``."""

    def __init__(self, image_shape, latent_dim: int, base_width: int, hidden_dim: int, extra_convs: int = 0):
        super().__init__()
        channels, size, _ = image_shape
        sizes = downsampling_sizes(size)
        widths = stage_widths(base_width, len(sizes))
        self.start = (widths[-1], sizes[-1], sizes[-1])
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, widths[-1] * sizes[-1] ** 2),
            nn.ReLU(inplace=True),
        )
        layers = []
        outs = list(reversed(widths[:-1])) + [channels]
        for i, (in_ch, out_ch) in enumerate(zip(reversed(widths), outs)):  # e.g. 32 x 14 x 14, then C x 28 x 28
            layers += same_size_convs(in_ch, extra_convs)
            layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z):
        return self.deconvs(self.fc(z).view(-1, *self.start))


class BroadcastDecoder(nn.Module):
    """z -> image logits by the spatial broadcast decoder (Watters et al. 2019): z is copied to every pixel, two
    coordinate planes are added, and stride-1 3x3 convolutions at full resolution draw the image.

    Position is then a function of the coordinates, not something upsampling must learn, and every layer sees the
    whole resolution: made for images of small objects (sprites), where the strided decoder rounds off corners.
    """

    def __init__(self, image_shape, latent_dim: int, width: int, layers: int = 3):
        super().__init__()
        channels, height, width_px = image_shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width_px), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys]).unsqueeze(0), persistent=False)
        convs, in_ch = [], latent_dim + 2
        for _ in range(layers):  # width x H x W each
            convs += [nn.Conv2d(in_ch, width, 3, 1, 1), nn.ReLU(inplace=True)]
            in_ch = width
        convs.append(nn.Conv2d(in_ch, channels, 1))  # C x H x W
        self.convs = nn.Sequential(*convs)

    def forward(self, z):
        n, (h, w) = z.shape[0], self.coords.shape[-2:]
        planes = z[:, :, None, None].expand(-1, -1, h, w)
        coords = self.coords.to(z.dtype).expand(n, -1, -1, -1)
        return self.convs(torch.cat([planes, coords], 1).contiguous(memory_format=torch.channels_last))
