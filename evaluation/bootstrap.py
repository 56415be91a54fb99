"""Percentile-bootstrap intervals over random blocks of already-extracted features.

Each feature set is cut once into about ``MAX_BLOCKS`` disjoint random blocks; a bootstrap replicate draws
blocks with replacement (multinomial counts). Random blocks of i.i.d. points are themselves i.i.d., so this
is an ordinary bootstrap whose unit is a block. It lets every metric precompute per-block sums once (second
moments for FID, kernel sums for KID, ball counts for PRDC), so 200 replicates cost a few matrix products
instead of 200 recomputations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_B = 200
MAX_BLOCKS = 250
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Blocks:
    """A random partition of ``n`` points into blocks: ``index[g]`` is the points of block ``g``."""

    n: int
    index: tuple[torch.Tensor, ...]

    @classmethod
    def random(cls, n: int, seed: int, max_blocks: int = MAX_BLOCKS) -> Blocks:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return cls(n, tuple(order.tensor_split(min(n, max_blocks))))

    @property
    def count(self) -> int:
        return len(self.index)

    @property
    def sizes(self) -> torch.Tensor:
        return torch.tensor([len(i) for i in self.index], dtype=torch.float64)

    @property
    def order(self) -> torch.Tensor:
        """The points sorted by block (block 0's points first)."""
        return torch.cat(self.index)

    def groups(self, values: torch.Tensor, dim: int = 0) -> list[torch.Tensor]:
        """``values`` in block order along ``dim``, reshaped to (..., blocks, block size, ...): one view for
        the blocks of each size (``tensor_split`` makes the first ``n % G`` blocks one point larger)."""
        big, size = self.n % self.count, self.n // self.count
        parts = values.split([big * (size + 1), (self.count - big) * size], dim=dim)
        shapes = ((big, size + 1), (self.count - big, size))
        return [
            part.reshape(*part.shape[:dim], *shape, *part.shape[dim + 1 :])
            for part, shape in zip(parts, shapes)
            if shape[0]
        ]

    def sum_sorted(self, values: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Per-block sums along ``dim`` of values already in block order (n along dim -> G along dim)."""
        return torch.cat([group.sum(dim + 1) for group in self.groups(values, dim)], dim=dim)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Per-block sums of per-point ``values`` (n, ...) in the points' own order -> (G, ...)."""
        return self.sum_sorted(values[self.order])

    def resample(self, replicates: int, seed: int) -> torch.Tensor:
        """(replicates, G) multinomial counts: how often each block is drawn (G draws with replacement)."""
        generator = torch.Generator().manual_seed(seed)
        draws = torch.randint(self.count, (replicates, self.count), generator=generator)
        return torch.zeros(replicates, self.count, dtype=torch.float64).scatter_add_(
            1, draws, torch.ones_like(draws, dtype=torch.float64)
        )

    def subsets(self, size: int, draws: int, seed: int) -> torch.Tensor:
        """(draws, G) 0/1 counts of random subsets of whole blocks holding about ``size`` points (no
        replacement): random sub-samples of size ``size`` for FID-against-n."""
        per_block = self.n / self.count
        take = max(1, min(self.count, round(size / per_block)))
        generator = torch.Generator().manual_seed(seed)
        picks = torch.stack([torch.randperm(self.count, generator=generator)[:take] for _ in range(draws)])
        return torch.zeros(draws, self.count, dtype=torch.float64).scatter_(1, picks, 1.0)


def interval(
    replicates: torch.Tensor,
    estimate: float | None = None,
    *,
    lower: float = -math.inf,
    upper: float = math.inf,
    confidence: float = CONFIDENCE,
) -> tuple[float | None, float | None]:
    """The 2.5 and 97.5 percentiles of the replicates; non-finite replicates (a degenerate resample) are
    dropped, and none left gives (None, None).

    With ``estimate``, the percentiles are moved by ``estimate - median(replicates)``: a resample drawn with
    replacement repeats points, which shifts set-based metrics (FID up, coverage and precision down), so the
    raw percentiles need not even hold the estimate; their spread is kept. ``lower``/``upper``: the metric's
    range (e.g. 0 and 1 for coverage).
    """
    values = replicates.double().flatten()
    values = values[torch.isfinite(values)]
    if not len(values):
        return None, None
    tail = (1 - confidence) / 2
    low, high = torch.quantile(values, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    if estimate is not None:
        shift = estimate - values.median().item()
        low, high = low + shift, high + shift
    return max(low, lower), min(high, upper)
