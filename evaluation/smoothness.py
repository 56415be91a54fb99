"""Latent smoothness: how evenly the decoded images change along straight lines in latent space."""

from __future__ import annotations

import torch

from generators.base import balanced_labels

PAIRS, STEPS = 64, 8  # the metric table's paths: 64 of 8 steps each


@torch.inference_mode()
def interpolation_smoothness(
    model,
    extractor,
    draw,
    *,
    pairs: int = PAIRS,
    steps: int = STEPS,
    generator: torch.Generator | None = None,
    bootstrap: int = 0,
    seed: int = 0,
):
    """Mean feature distance between consecutive frames of ``steps``-step interpolations, divided by the
    end-point distance over ``steps`` (the step an even path would take). 1 = the features move evenly,
    larger = jumps between frames (lower = smoother). Ratio of sums over pairs, so near pairs cannot blow it up.
    With ``bootstrap`` B > 0: (value, 95 % interval low, high) from B resamples of the pairs.
    """
    z_a, z_b = draw(pairs, generator), draw(pairs, generator)
    t = torch.linspace(0, 1, steps + 1, device=z_a.device).view(-1, 1, 1)
    z = (z_a.unsqueeze(0) * (1 - t) + z_b.unsqueeze(0) * t).flatten(0, 1)  # (steps + 1) * pairs latents
    # a class-conditional model keeps one class along each path
    classes = getattr(getattr(model, "capabilities", None), "num_classes", None)
    kw = {} if classes is None else {"labels": balanced_labels(pairs, classes).repeat(steps + 1).to(z.device)}
    feats = extractor.features_and_logits(model.decode(z, **kw).clamp(0, 1))[0].view(steps + 1, pairs, -1).double()
    step_mean = (feats[1:] - feats[:-1]).norm(dim=-1).mean(0)  # per pair
    end_to_end = (feats[-1] - feats[0]).norm(dim=-1)
    value = float(step_mean.sum() / (end_to_end.sum() / steps))
    if not bootstrap:
        return value
    from .bootstrap import interval

    draws = torch.randint(pairs, (bootstrap, pairs), generator=torch.Generator().manual_seed(seed))
    replicates = step_mean[draws].sum(1) / (end_to_end[draws].sum(1) / steps)  # resampled pairs
    return value, *interval(replicates, value, lower=0.0)
