"""VAE likelihood bounds on test images: the ELBO and the IWAE bound (Burda et al. 2016), KL per latent
dimension and active units.

Both bounds come from the same k importance samples per image: ELBO = mean_k log w_k and
IWAE = log mean_k w_k with w = p(x|z) p(z) / q(z|x), so ELBO <= IWAE holds exactly (Jensen).
"""

from __future__ import annotations

import math

import torch

from generators.vae import gaussian_kl

ACTIVE_UNIT_THRESHOLD = 0.01


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((z - mu).square() / logvar.exp() + logvar + math.log(2 * math.pi))).sum(-1)


@torch.inference_mode()
def likelihood_bounds(
    model,
    images: torch.Tensor,
    k: int = 100,
    *,
    generator: torch.Generator | None = None,
    chunk: int = 50,
    labels: torch.Tensor | None = None,
) -> dict:
    """ELBO and IWAE_k in nats per image (log-likelihood bounds, higher is better) and bits/dim
    (negative bound per pixel, lower is better). ``labels``: the images' classes, for a class-conditional model
    (its bounds are then on log p(x | class))."""
    log_w = []
    for i, part in enumerate(images.split(chunk)):
        x = part.to(model.device)
        y = None if labels is None else labels[i * chunk : (i + 1) * chunk].to(model.device)
        mu, logvar = model.posterior(x, **({} if y is None else model.label_kwargs(y)))
        eps = torch.randn(k, *mu.shape, generator=generator).to(mu.device)
        z = mu + eps * (0.5 * logvar).exp()  # (k, B, d)
        logits = model.decode_logits(z.flatten(0, 1), **({} if y is None else model.label_kwargs(y.repeat(k))))
        log_px = model.log_likelihood(logits, x.repeat(k, 1, 1, 1)).view(k, -1)
        log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_w.append((log_px + log_pz - _log_normal(z, mu, logvar)).double().cpu())
    log_w = torch.cat(log_w, 1)  # (k, N)
    elbo = log_w.mean(0).mean().item()
    iwae = (torch.logsumexp(log_w, 0) - math.log(k)).mean().item()
    dims = images[0].numel()
    return {
        "elbo_nats": elbo,
        "iwae_nats": iwae,
        "elbo_bits_per_dim": -elbo / (dims * math.log(2)),
        "iwae_bits_per_dim": -iwae / (dims * math.log(2)),
        "likelihood": model.likelihood_name,
    }


@torch.inference_mode()
def latent_usage(model, images: torch.Tensor, batch_size: int = 1000, labels: torch.Tensor | None = None) -> dict:
    """KL(q(z|x) || p(z)) per latent dimension (mean over images) and active units: dimensions whose
    posterior mean varies across images, Cov_x(E_q[z_i]) > 0.01. ``labels``: for a class-conditional model."""
    mus, kls = [], []
    for i, part in enumerate(images.split(batch_size)):
        kw = (
            {} if labels is None else model.label_kwargs(labels[i * batch_size : (i + 1) * batch_size].to(model.device))
        )
        mu, logvar = model.posterior(part.to(model.device), **kw)
        mus.append(mu.double().cpu())
        kls.append(gaussian_kl(mu, logvar).double().cpu())
    mu = torch.cat(mus)
    return {
        "kl_per_dim": [round(v, 5) for v in torch.cat(kls).mean(0).tolist()],
        "active_units": int((mu.var(0) > ACTIVE_UNIT_THRESHOLD).sum()),
        "mean_variance_per_dim": [round(v, 5) for v in mu.var(0).tolist()],
    }
