"""Precision, recall, density and coverage (Naeem et al. 2020) with k-nearest-neighbour balls.

Distances are computed in row chunks with ``torch.cdist`` so memory stays at chunk x N floats (40 MB at
N = 10 000), never N x N.
"""

from __future__ import annotations

import torch

CHUNK = 1000


def knn_radii(feats: torch.Tensor, k: int, chunk: int = CHUNK) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point (the point itself is the 0-th)."""
    return torch.cat([torch.cdist(part, feats).kthvalue(k + 1, dim=1).values for part in feats.split(chunk)])


def prdc(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = 5, chunk: int = CHUNK) -> dict[str, float]:
    """precision: fakes inside some real ball; recall: reals inside some fake ball; density: mean number of real
    balls holding a fake, divided by k; coverage: real balls holding at least one fake."""
    real, fake = real_feats.float(), fake_feats.float()
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"PRDC with k={k} needs more than {k} real and fake samples")
    real_radii, fake_radii = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    in_real_ball, balls_per_fake = [], []
    for part in fake.split(chunk):
        inside = torch.cdist(part, real) < real_radii
        in_real_ball.append(inside.any(1))
        balls_per_fake.append(inside.sum(1))
    in_fake_ball, covered = [], []
    for part, radii in zip(real.split(chunk), real_radii.split(chunk)):
        dist = torch.cdist(part, fake)
        in_fake_ball.append((dist < fake_radii).any(1))
        covered.append(dist.min(1).values < radii)
    return {
        "precision": torch.cat(in_real_ball).float().mean().item(),
        "recall": torch.cat(in_fake_ball).float().mean().item(),
        "density": torch.cat(balls_per_fake).float().mean().item() / k,
        "coverage": torch.cat(covered).float().mean().item(),
    }
