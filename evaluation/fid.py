"""Fréchet distance (FID) and kernel distance (KID) between feature sets, computed by torchmetrics, and
their bootstrap replicates.

Features are extracted once, batched, and handed to torchmetrics through ``PrecomputedFeatures``, a
``feature`` module that passes them through. So one extraction serves FID, its real-vs-real floor, KID and
PRDC, while the point estimates stay torchmetrics' (float64 sums, eigenvalue trace). Intervals come from
per-block sums (``bootstrap.Blocks``): ``FidMoments`` holds the blocks' first and second moments,
``kid_block_sums`` the blocks' kernel sums, so a replicate is a weighted sum, not a recomputation.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .bootstrap import Blocks, interval

KID_SUBSETS = 100
KID_MAX_SUBSET = 1000
KERNEL_CHUNK = 1000
JITTER = 1e-9
FID_BOOTSTRAP_MAX_DIM = 512  # Inception's 2 048 features: 200 eigendecompositions of 2 048² are too slow


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


class FidMoments:
    """Per-block first and second moments of one feature set (centred on its mean, float64), so the
    covariance of any weighted union of blocks is one matrix product."""

    def __init__(self, feats: torch.Tensor, blocks: Blocks):
        x = _as_features(feats, "feats")
        self.center = x.mean(0)
        y = x - self.center
        self.blocks, self.sizes = blocks, blocks.sizes
        groups = blocks.groups(y[blocks.order])
        self.sums = torch.cat([g.sum(1) for g in groups])
        self.second = torch.cat([g.transpose(1, 2) @ g for g in groups]).flatten(1)

    def stats(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means (R, d) and unbiased covariances (R, d, d) of the R weighted unions ``counts`` (R, G)."""
        total = (counts @ self.sizes).unsqueeze(1)
        mean = counts @ self.sums / total
        d = mean.shape[1]
        second = (counts @ self.second).view(-1, d, d) / total.unsqueeze(2)
        cov = (second - mean.unsqueeze(2) * mean.unsqueeze(1)) * (total / (total - 1)).unsqueeze(2)
        return mean + self.center, cov


def _trace_sqrt_product(cov_a: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    """Tr (S_a S_b)^1/2 per batch entry: the eigenvalues of S_a S_b are those of the symmetric L^T S_b L
    (S_a = L L^T, Cholesky), so one symmetric eigenvalue solve each. Features with dead units make S_a
    singular, so JITTER x its mean variance is added to its diagonal first: a shift of about 1e-4 in FID, the
    same in every replicate (intervals are re-centred on the exact estimate, so it cancels)."""
    scale = cov_a.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12) * JITTER
    eye = torch.eye(cov_a.shape[1], dtype=cov_a.dtype)
    root, info = torch.linalg.cholesky_ex(cov_a + scale.view(-1, 1, 1) * eye)
    singular = info != 0
    if singular.any():  # not even the jitter helped: the eigenvector root
        vals, vecs = torch.linalg.eigh(cov_a[singular])
        root[singular] = vecs * vals.clamp_min(0).sqrt().unsqueeze(1)
    return torch.linalg.eigvalsh(root.transpose(1, 2) @ cov_b @ root).clamp_min(0).sqrt().sum(1)


def fid_replicates(a: FidMoments, b: FidMoments, counts_a: torch.Tensor, counts_b: torch.Tensor) -> torch.Tensor:
    """FID of each pair of weighted unions of blocks (R,): bootstrap replicates or random sub-samples."""
    mean_a, cov_a = a.stats(counts_a)
    mean_b, cov_b = b.stats(counts_b)
    traces = cov_a.diagonal(dim1=1, dim2=2).sum(1) + cov_b.diagonal(dim1=1, dim2=2).sum(1)
    return (mean_a - mean_b).square().sum(1) + traces - 2 * _trace_sqrt_product(cov_a, cov_b)


def fid_curve(a: FidMoments, b: FidMoments, sizes, draws: int, seed: int) -> list[dict[str, float]]:
    """FID on random sub-samples of ``size`` points from each set (whole blocks, no replacement): the mean
    over ``draws`` sub-samples and the 2.5/97.5 percentiles of their spread, per size."""
    points = []
    for i, size in enumerate(sizes):
        counts_a = a.blocks.subsets(size, draws, seed + 2 * i)
        counts_b = b.blocks.subsets(size, draws, seed + 2 * i + 1)
        values = fid_replicates(a, b, counts_a, counts_b)
        n_a, n_b = (counts_a[0] @ a.sizes).item(), (counts_b[0] @ b.sizes).item()
        low, high = interval(values)
        points.append({"n": round(effective_n(n_a, n_b)), "fid": values.mean().item(), "ci_low": low, "ci_high": high})
    return points


def effective_n(n_a: float, n_b: float) -> float:
    """FID's finite-sample bias grows like 1/n_a + 1/n_b: the equal size with the same bias."""
    return 2 / (1 / n_a + 1 / n_b)


def fid_infinity(points: list[dict[str, float]]) -> float | None:
    """FID extrapolated to infinitely many samples (Chong & Forsyth 2020): the intercept of a least-squares
    line of FID against 1/n; None with fewer than two sample sizes."""
    if len({p["n"] for p in points}) < 2:
        return None
    x = torch.tensor([1 / p["n"] for p in points], dtype=torch.float64)
    y = torch.tensor([p["fid"] for p in points], dtype=torch.float64)
    design = torch.stack([torch.ones_like(x), x], 1)
    return torch.linalg.lstsq(design, y.unsqueeze(1)).solution[0, 0].item()


def _kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """torchmetrics' KID kernel: (x·y / d + 1)^3."""
    return (x @ y.T / x.shape[1] + 1).pow(3)


def kid_block_sums(x: torch.Tensor, y: torch.Tensor, blocks_x: Blocks, blocks_y: Blocks) -> torch.Tensor:
    """(G_x, G_y) sums of the kernel over every pair of blocks, in row chunks (memory: chunk x n_y). Sums
    within a block (~20 terms) are float32, the rest float64."""
    x, y = x.float()[blocks_x.order], y.float()[blocks_y.order]
    per_row = torch.cat([blocks_y.sum_sorted(_kernel(part, y), dim=1).double() for part in x.split(KERNEL_CHUNK)])
    return blocks_x.sum_sorted(per_row)


class KidBlocks:
    """Kernel sums per pair of blocks of the real and generated features: the unbiased MMD² (all pairs of
    distinct points) of any weighted union of blocks. ``real_part`` (``kid_within``) is reusable across
    sample sets scored against one reference."""

    def __init__(self, real, fake, blocks_real: Blocks, blocks_fake: Blocks, real_part: tuple | None = None):
        self.rr, self.self_r = real_part or kid_within(real, blocks_real)
        self.ff, self.self_f = kid_within(fake, blocks_fake)
        self.rf = kid_block_sums(real, fake, blocks_real, blocks_fake)
        self.size_r, self.size_f = blocks_real.sizes, blocks_fake.sizes

    def replicates(self, counts_r: torch.Tensor, counts_f: torch.Tensor) -> torch.Tensor:
        n_r, n_f = counts_r @ self.size_r, counts_f @ self.size_f
        within_r = _pair_mean(self.rr, self.self_r, self.size_r, counts_r)
        within_f = _pair_mean(self.ff, self.self_f, self.size_f, counts_f)
        across = ((counts_r @ self.rf) * counts_f).sum(1) / (n_r * n_f)
        return within_r + within_f - 2 * across


def kid_within(feats: torch.Tensor, blocks: Blocks) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel sums within one set: per pair of blocks, and of each point with itself per block."""
    return kid_block_sums(feats, feats, blocks, blocks), blocks.sum(_kernel_diag(feats))


def _kernel_diag(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return (x.square().sum(1) / x.shape[1] + 1).pow(3).double()


def _pair_mean(block_sums, self_sums, sizes, counts) -> torch.Tensor:
    """Mean kernel over ordered pairs of distinct points of a weighted union (copies of one point excluded)."""
    total = ((counts @ block_sums) * counts).sum(1) - (counts.square() * self_sums).sum(1)
    pairs = (counts @ sizes).square() - (counts.square() * sizes).sum(1)
    return total / pairs
