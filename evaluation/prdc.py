"""Precision, recall, density and coverage (Naeem et al. 2020) with k-nearest-neighbour balls, and their
bootstrap replicates.

Distances are computed once, in row chunks with ``torch.cdist``, so memory stays at chunk x N floats (40 MB
at N = 10 000), never N x N. What the four scores need from them is kept as ball counts per block of the
other set (``PrdcBlocks``); a bootstrap replicate that draws blocks with replacement is then a few matrix
products. The k-NN radii stay those of the full sets (the usual shortcut: in a resample with repeated points
the radii would shrink to zero).
"""

from __future__ import annotations

import torch

from .bootstrap import Blocks

CHUNK = 1000


def knn_radii(feats: torch.Tensor, k: int, chunk: int = CHUNK) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point (the point itself is the 0-th)."""
    return torch.cat([torch.cdist(part, feats).kthvalue(k + 1, dim=1).values for part in feats.split(chunk)])


class PrdcBlocks:
    """Ball counts between the points of one set and the blocks of the other (both sets in block order).

    - ``real_balls[j, g]``: real balls of block g holding fake j (precision, density);
    - ``fake_balls[h, i]``: fakes of block h whose ball holds real i (recall);
    - ``covering[h, i]``: fakes of block h inside real i's ball (coverage).
    One pass over fake x real distances, in chunks of fakes.
    """

    def __init__(self, real, fake, blocks_real: Blocks, blocks_fake: Blocks, *, k: int, real_radii=None, chunk=CHUNK):
        real, fake = real.float(), fake.float()
        if min(len(real), len(fake)) <= k:
            raise ValueError(f"PRDC with k={k} needs more than {k} real and fake samples")
        self.k, self.blocks_real, self.blocks_fake = k, blocks_real, blocks_fake
        real_radii = knn_radii(real, k, chunk) if real_radii is None else real_radii
        fake_radii = knn_radii(fake, k, chunk)[blocks_fake.order]
        real, real_radii = real[blocks_real.order], real_radii[blocks_real.order]
        fake = fake[blocks_fake.order]
        fake_labels = torch.repeat_interleave(torch.arange(blocks_fake.count), blocks_fake.sizes.long())
        self.fake_balls = torch.zeros(blocks_fake.count, len(real))
        self.covering = torch.zeros(blocks_fake.count, len(real))
        real_balls = []
        for rows in torch.arange(len(fake)).split(chunk):
            dist = torch.cdist(fake[rows], real)
            inside = (dist < real_radii).float()
            real_balls.append(blocks_real.sum_sorted(inside, dim=1))
            self.covering.index_add_(0, fake_labels[rows], inside)
            self.fake_balls.index_add_(0, fake_labels[rows], (dist < fake_radii[rows].unsqueeze(1)).float())
        self.real_balls = torch.cat(real_balls)

    def replicates(self, counts_real: torch.Tensor, counts_fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four scores (R,) of R weighted unions of blocks (counts: (R, G_real), (R, G_fake))."""
        counts_real, counts_fake = counts_real.float(), counts_fake.float()
        n_real = counts_real @ self.blocks_real.sizes.float()
        n_fake = counts_fake @ self.blocks_fake.sizes.float()
        balls = self.real_balls @ counts_real.T  # (n_fake, R): real balls holding each fake
        in_real = (self.blocks_fake.sum_sorted((balls > 0).float()).T * counts_fake).sum(1)
        density = (self.blocks_fake.sum_sorted(balls).T * counts_fake).sum(1)
        in_fake = self.blocks_real.sum_sorted((self.fake_balls.T @ counts_fake.T > 0).float()).T
        covered = self.blocks_real.sum_sorted((self.covering.T @ counts_fake.T > 0).float()).T
        return {
            "precision": in_real / n_fake,
            "recall": (in_fake * counts_real).sum(1) / n_real,
            "density": density / (self.k * n_fake),
            "coverage": (covered * counts_real).sum(1) / n_real,
        }


def prdc(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = 5, chunk: int = CHUNK) -> dict[str, float]:
    """precision: fakes inside some real ball; recall: reals inside some fake ball; density: mean number of real
    balls holding a fake, divided by k; coverage: real balls holding at least one fake."""
    blocks_real, blocks_fake = Blocks.random(len(real_feats), 0), Blocks.random(len(fake_feats), 1)
    scores = PrdcBlocks(real_feats, fake_feats, blocks_real, blocks_fake, k=k, chunk=chunk).replicates(
        torch.ones(1, blocks_real.count), torch.ones(1, blocks_fake.count)
    )
    return {name: value.item() for name, value in scores.items()}
