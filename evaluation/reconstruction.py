"""Reconstruction scores of test images: MSE, BCE, PSNR and SSIM (torchmetrics, data_range = 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

BCE_EPS = 1e-6


def reconstruction_scores(recon: torch.Tensor, target: torch.Tensor, *, bootstrap: int = 0, seed: int = 0) -> dict:
    """Per-pixel mean MSE and BCE (nats), PSNR (dB) over the whole set, mean SSIM. With ``bootstrap`` replicates,
    each also gets a 95 % percentile interval from resampling the images (PSNR's from the resampled MSE)."""
    recon, target = recon.float().clamp(0, 1), target.float()
    per_image = {
        "recon_mse": (recon - target).pow(2).flatten(1).mean(1),
        "recon_bce": F.binary_cross_entropy(recon.clamp(BCE_EPS, 1 - BCE_EPS), target, reduction="none")
        .flatten(1)
        .mean(1),
        "recon_ssim": structural_similarity_index_measure(recon, target, data_range=1.0, reduction="none"),
    }
    scores = {key: values.mean().item() for key, values in per_image.items()}
    scores["recon_psnr"] = float(peak_signal_noise_ratio(recon, target, data_range=1.0))
    if bootstrap:
        from .bootstrap import interval

        generator = torch.Generator().manual_seed(seed)
        picks = torch.randint(len(recon), (bootstrap, len(recon)), generator=generator)
        for key, values in per_image.items():
            replicates = values.double()[picks].mean(1)
            scores[f"{key}_ci_low"], scores[f"{key}_ci_high"] = interval(replicates, scores[key], lower=0.0)
        mse_replicates = per_image["recon_mse"].double()[picks].mean(1)
        psnr = 10 * torch.log10(1 / mse_replicates)
        scores["recon_psnr_ci_low"], scores["recon_psnr_ci_high"] = interval(psnr, scores["recon_psnr"])
    return scores


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
