"""Fréchet distance (FID) and kernel distance (KID) between feature sets, computed by torchmetrics.

Features are extracted once, batched, and handed to torchmetrics through ``PrecomputedFeatures``, a
``feature`` module that passes them through. So one extraction serves FID, its real-vs-real floor, KID and
PRDC, while the statistics and the distance itself stay torchmetrics' (float64 sums, eigenvalue trace).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

KID_SUBSETS = 100
KID_MAX_SUBSET = 1000


class PrecomputedFeatures(nn.Module):
    """The torchmetrics ``feature`` module for features that were already extracted."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _as_features(feats: torch.Tensor, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    feats = torch.as_tensor(feats)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"{name} must be an (N, d) tensor with N >= 2, got shape {tuple(feats.shape)}")
    return feats.detach().cpu().to(dtype)


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two (N, d) feature sets, in float64."""
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    metric = FrechetInceptionDistance(feature=PrecomputedFeatures(a.shape[1]))
    metric.update(a, real=True)
    metric.update(b, real=False)
    return float(metric.compute())


def real_halves(count: int, n: int) -> int:
    """Size of each of the two disjoint real halves for the floor: n, or all that ``count`` images allow."""
    return min(n, count // 2)


def fid_floor(real_feats: torch.Tensor, n: int, seed: int = 0) -> tuple[float, int]:
    """FID between two disjoint random halves of the real features, each of size ``real_halves``.

    This is the FID a perfect generator would get at this sample size: FID is biased upwards at finite n,
    so a model's FID only means something next to it.
    """
    half = real_halves(len(real_feats), n)
    order = torch.randperm(len(real_feats), generator=torch.Generator().manual_seed(seed))
    return frechet_distance(real_feats[order[:half]], real_feats[order[half : 2 * half]]), half


def kernel_distance(real_feats: torch.Tensor, fake_feats: torch.Tensor, seed: int = 0) -> tuple[float, float, int]:
    """KID (cubic polynomial kernel MMD^2, unbiased) mean and std over random subsets, and the subset size.

    The subset size adapts to n: 1 000 (the usual choice) when there are at least 2 000 samples, else half
    of them, so the subsets still differ and their spread means something. Subsets are drawn from ``seed``.
    Float32 kernels: 3x faster than float64 on a CPU, and their rounding (~1e-6) is far below KID's spread.
    """
    real = _as_features(real_feats, "real_feats", torch.float32)
    fake = _as_features(fake_feats, "fake_feats", torch.float32)
    subset = max(2, min(KID_MAX_SUBSET, min(len(real), len(fake)) // 2))
    with warnings.catch_warnings():  # its "features are kept in a buffer" notice: we hand it features anyway
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(
            feature=PrecomputedFeatures(real.shape[1]), subsets=KID_SUBSETS, subset_size=subset
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), subset
