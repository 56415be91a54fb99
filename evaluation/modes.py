"""Mode counts: which classes the extractor's classifier sees in the samples, and how far the class
histogram is from the real one."""

from __future__ import annotations

import torch

MODE_THRESHOLD = 0.01  # a class is a covered mode when it holds at least 1 % of the samples
KL_EPS = 1e-6


def class_histogram(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(classes.long().flatten(), minlength=num_classes).double() / max(1, classes.numel())


def mode_stats(fake_classes: torch.Tensor, real_classes: torch.Tensor, num_classes: int) -> dict:
    """modes (classes with >= 1 % of samples), KL(sample histogram || real histogram) in nats, the histogram."""
    fake_hist = class_histogram(fake_classes, num_classes)
    real_hist = class_histogram(real_classes, num_classes).clamp_min(KL_EPS)
    present = fake_hist > 0
    kl = (fake_hist[present] * (fake_hist[present] / real_hist[present]).log()).sum()
    return {
        "modes": int((fake_hist >= MODE_THRESHOLD).sum()),
        "mode_kl": float(kl),
        "class_histogram": [round(v, 5) for v in fake_hist.tolist()],
    }
