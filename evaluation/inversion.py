"""Latent inversion: find z with decode(z) close to an image, for models without an encoder (the GAN).

Adam on z for a fixed number of steps from several random starts; each image keeps its best start. The
reconstruction table can then hold a number for every model, labelled by how it was made.
"""

from __future__ import annotations

import torch

# The one set of inversion settings: the evaluation row and the dashboard's GAN reconstructions and interpolations
INVERSION_STEPS = 50
INVERSION_RESTARTS = 2
INVERSION_LR = 0.1


def inversion_method(restarts: int, steps: int) -> str:
    return f"latent inversion (Adam, {restarts} restarts, {steps} steps)"


def invert(
    model,
    images: torch.Tensor,
    *,
    steps: int = INVERSION_STEPS,
    restarts: int = INVERSION_RESTARTS,
    lr: float = INVERSION_LR,
    generator: torch.Generator | None = None,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, decode(z)) minimising the per-image MSE; starts drawn from the model's prior with ``generator``.
    ``labels``: the images' classes, which a class-conditional model decodes with."""
    if steps < 1 or restarts < 1:
        raise ValueError("steps and restarts must be at least 1")
    n = len(images)
    with torch.inference_mode(False), torch.enable_grad():
        target = images.detach().clone().to(model.device).repeat(restarts, 1, 1, 1)  # row r*n + i = start r of image i
        z = model.prior(n * restarts, generator).detach().clone().requires_grad_(True)
        kw = {} if labels is None else model.label_kwargs(labels.to(model.device).repeat(restarts))
        optimizer = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            loss = (model.decode(z, **kw) - target).square().flatten(1).mean(1).sum()
            (z.grad,) = torch.autograd.grad(loss, [z])  # only z: the model's weights get no gradient
            optimizer.step()
        with torch.no_grad():
            recon = model.decode(z, **kw)
            error = (recon - target).square().flatten(1).mean(1).view(restarts, n)
            best = error.argmin(0) * n + torch.arange(n, device=error.device)
            return z[best].detach().clone(), recon[best].detach().clone()
