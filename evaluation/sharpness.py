"""Sharpness: the variance of the Laplacian (a standard blur measure), of samples relative to real images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def laplacian_variances(images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Per image, the variance of the Laplacian of the grey image (valid region only)."""
    values = []
    for part in images.split(batch_size):
        grey = part.float().mean(1, keepdim=True)
        values.append(F.conv2d(grey, LAPLACIAN.to(grey.device)).flatten(1).var(1).cpu())
    return torch.cat(values)


def laplacian_variance(images: torch.Tensor, batch_size: int = 2000) -> float:
    """Mean over images of the variance of the Laplacian of the grey image (valid region only)."""
    return laplacian_variances(images, batch_size).mean().item()


def sharpness_interval(images: torch.Tensor, real_sharpness: float, bootstrap: int, seed: int = 0):
    """95 % percentile-bootstrap interval of the sharpness ratio, resampling the images."""
    from .bootstrap import interval

    values = laplacian_variances(images).double()
    draws = torch.randint(len(values), (bootstrap, len(values)), generator=torch.Generator().manual_seed(seed))
    return interval(values[draws].mean(1) / real_sharpness, values.mean().item() / real_sharpness, lower=0.0)


def sharpness_ratio(fake_images: torch.Tensor, real_images: torch.Tensor) -> float:
    """1 = as sharp as the data; < 1 = blurrier (the VAE's usual result); > 1 = noisier or crisper."""
    return laplacian_variance(fake_images) / laplacian_variance(real_images)
