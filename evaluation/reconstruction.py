"""Reconstruction scores of test images: MSE, BCE, PSNR and SSIM (torchmetrics, data_range = 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

BCE_EPS = 1e-6


def reconstruction_scores(recon: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Per-pixel mean MSE and BCE (nats), PSNR (dB) over the whole set, mean SSIM."""
    recon, target = recon.float().clamp(0, 1), target.float()
    return {
        "recon_mse": F.mse_loss(recon, target).item(),
        "recon_bce": F.binary_cross_entropy(recon.clamp(BCE_EPS, 1 - BCE_EPS), target).item(),
        "recon_psnr": float(peak_signal_noise_ratio(recon, target, data_range=1.0)),
        "recon_ssim": float(structural_similarity_index_measure(recon, target, data_range=1.0)),
    }


@torch.inference_mode()
def encode_decode(model, images: torch.Tensor, batch_size: int = 1000, labels: torch.Tensor | None = None):
    """decode(encode(x)) in batches; ``labels``: the images' classes, given to a class-conditional model."""
    parts = []
    for i, part in enumerate(images.split(batch_size)):
        kw = (
            {} if labels is None else model.label_kwargs(labels[i * batch_size : (i + 1) * batch_size].to(model.device))
        )
        parts.append(model.decode(model.encode(part.to(model.device), **kw), **kw).cpu())
    return torch.cat(parts)
