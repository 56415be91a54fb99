"""Diagnostics the dashboard shows beside the metric rows: per-image scores of a model and readings of a run's
training history. Evaluation owns these numbers; the dashboard only draws them.

Every reading of "the end of training" uses one window, ``HISTORY_TAIL_FRACTION`` of the logged steps.
What applies to a model is decided by its capabilities (posterior, encoder, discriminator), never its name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from generators.vae import gaussian_kl

from .likelihood import ACTIVE_UNIT_THRESHOLD, latent_usage
from .metric_specs import OOD_KINDS

HISTORY_TAIL_FRACTION = 0.2  # "the end of training" = the last 20 % of the logged steps, for every reading
D_WINS_GAP = 0.8  # mean D(real) - D(fake) above this: D separates perfectly and G gets no useful gradient
ANOMALY_IMAGES = 2000  # test images the anomaly AUCs are measured on (with as many odd inputs of each kind)
COLLAPSE_MODE_FRACTION = 0.3  # fewer than 30 % of the classes produced: (partial) mode collapse
ANOMALY_SCORE_NAMES = {
    "posterior": "negative ELBO (nats, decoder at the posterior mean)",
    "encoder": "reconstruction error (sum of squares)",
    "discriminator": "−D(x) logit",
}


def out_of_distribution(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Odd inputs made from real ones (``OOD_KINDS``): uniform noise, inverted grey levels, shuffled pixels."""
    if kind == "noise":
        return torch.rand(images.shape, generator=generator)
    if kind == "inverted":
        return 1.0 - images
    if kind != "shuffled":
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(OOD_KINDS)}")
    flat = images.flatten(1)
    order = torch.randperm(flat.shape[1], generator=generator)
    return flat[:, order].view_as(images)


def history_tail(history: pd.DataFrame, fraction: float = HISTORY_TAIL_FRACTION) -> pd.DataFrame:
    """The last ``fraction`` of the logged steps (at least one row)."""
    return history.iloc[-max(1, int(len(history) * fraction)) :]


# -- per-image scores -----------------------------------------------------------------------------------------
def label_kwargs(model, labels) -> dict:
    """The keyword a class-conditional model's networks take for ``labels`` ({} without labels)."""
    return {} if labels is None else model.label_kwargs(torch.as_tensor(labels).to(model.device))


def lowest_over_classes(model, images: torch.Tensor, score, labels=None) -> torch.Tensor:
    """``score(images, kw)`` per image; for a class-conditional model without known ``labels``, the lowest score
    over every class it could be (the class that explains the image best)."""
    classes = model.capabilities.num_classes
    if classes is None or labels is not None:
        return score(images, label_kwargs(model, labels))
    tried = [score(images, label_kwargs(model, torch.full((len(images),), k))) for k in range(classes)]
    return torch.stack(tried).min(0).values


@torch.inference_mode()
def negative_elbo_per_image(model, images: torch.Tensor, labels=None) -> torch.Tensor:
    """−log p(x | z = μ(x)) + KL(q(z|x) ‖ N(0, I)) per image, in nats, with the model's own decoder likelihood
    (Bernoulli for BCE runs, unit Gaussian for MSE runs). Needs the ``posterior`` capability."""
    x = images.to(model.device)

    def score(x, kw):
        mu, logvar = model.posterior(x, **kw)
        return (gaussian_kl(mu, logvar).sum(1) - model.log_likelihood(model.decode_logits(mu, **kw), x)).cpu()

    return lowest_over_classes(model, x, score, labels)


@torch.inference_mode()
def reconstruction_error_per_image(model, images: torch.Tensor, labels=None) -> torch.Tensor:
    """Sum of squared pixel errors of decode(encode(x)) per image. Needs the ``encoder`` capability."""
    x = images.to(model.device)
    return lowest_over_classes(
        model, x, lambda x, kw: (model.decode(model.encode(x, **kw), **kw) - x).pow(2).flatten(1).sum(1).cpu(), labels
    )


def noisy_copies(clean: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``clean`` plus Gaussian noise of standard deviation ``sigma``, clipped to [0, 1]."""
    return (clean + sigma * torch.randn(clean.shape, generator=generator)).clamp(0, 1)


@torch.inference_mode()
def denoise(model, clean: torch.Tensor, noisy: torch.Tensor, labels=None) -> dict:
    """decode(encode(noisy)) and how far it and the noisy input are from the clean images (MSE per pixel).
    ``helps`` is False when the output is further from the clean images than the noisy input was."""
    kw = label_kwargs(model, labels)
    output = model.decode(model.encode(noisy.to(model.device), **kw), **kw).clamp(0, 1).cpu()
    output_mse, input_mse = (output - clean).pow(2).mean().item(), (noisy - clean).pow(2).mean().item()
    return {"output": output, "output_mse": output_mse, "input_mse": input_mse, "helps": output_mse < input_mse}


def anomaly_score_kind(capabilities) -> str | None:
    """Which score a model's anomaly detection uses: the strongest its capabilities allow, or None."""
    for kind in ("posterior", "encoder", "discriminator"):
        if getattr(capabilities, kind):
            return kind
    return None


def anomaly_scores(model, images: torch.Tensor) -> torch.Tensor:
    """Per image, higher = odder: negative ELBO (posterior), reconstruction error (encoder) or −D(x)
    (discriminator)."""
    kind = anomaly_score_kind(model.capabilities)
    if kind == "posterior":
        return negative_elbo_per_image(model, images)
    if kind == "encoder":
        return reconstruction_error_per_image(model, images)
    if kind == "discriminator":
        return lowest_over_classes(model, images, lambda x, kw: -model.realness(x, **kw).cpu())
    raise ValueError(f"{model.capabilities.title} has no encoder and no discriminator to score images with")


def roc_auc(inliers, outliers) -> float:
    """ROC AUC of telling outliers (positives) from inliers by a score that should be higher for outliers.
    1 = perfect, 0.5 = chance, below 0.5 = the score ranks them the wrong way round (it is inverted).

    Scores of any magnitude (a negative ELBO is in the hundreds of nats): only their order counts, ties count
    half. scikit-learn's ``roc_auc_score`` ranks raw scores; torchmetrics' ``binary_auroc`` would squash
    scores outside [0, 1] through a sigmoid, making every large score 1.0 and any separation read 0.5."""
    from sklearn.metrics import roc_auc_score

    inliers, outliers = np.asarray(inliers, dtype=np.float64).ravel(), np.asarray(outliers, dtype=np.float64).ravel()
    if not len(inliers) or not len(outliers):
        raise ValueError("ROC AUC needs at least one inlier and one outlier score")
    scores = np.concatenate([inliers, outliers])
    if not np.isfinite(scores).all():
        raise ValueError("ROC AUC needs finite scores")
    targets = np.concatenate([np.zeros(len(inliers)), np.ones(len(outliers))])
    return float(roc_auc_score(targets, scores))


def anomaly_score_sets(model, images: torch.Tensor, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's anomaly scores of ``images`` and of each kind of odd input made from them (one seeded stream,
    in ``OOD_KINDS`` order): what the metric row and the dashboard's histograms both score."""
    generator = torch.Generator().manual_seed(seed)
    inliers = anomaly_scores(model, images).double().numpy()
    outliers = {
        kind: anomaly_scores(model, out_of_distribution(images, kind, generator)).double().numpy() for kind in OOD_KINDS
    }
    return inliers, outliers


def anomaly_test_images(test) -> torch.Tensor:
    """The fixed subset of a test split (every class, the same for every run) that anomaly detection scores."""
    from .scoring import subset

    return test.images[subset(len(test), ANOMALY_IMAGES)].float() / 255


def anomaly_detection(model, images: torch.Tensor, *, seed: int, bootstrap: int) -> dict:
    """Per odd-input kind of ``OOD_KINDS``: the ROC AUC of telling those inputs (made from ``images``) from
    ``images`` themselves by the model's anomaly score, with a 95 % percentile-bootstrap interval (inliers and
    outliers resampled separately). Empty when the model has nothing to score images with."""
    from .bootstrap import interval

    if anomaly_score_kind(model.capabilities) is None:
        return {}
    inliers, outlier_sets = anomaly_score_sets(model, images, seed)
    rng = np.random.default_rng(seed)
    row = {"anomaly_score": anomaly_score_kind(model.capabilities), "anomaly_n": len(images)}
    for kind, outliers in outlier_sets.items():
        auc = roc_auc(inliers, outliers)
        replicates = [
            roc_auc(rng.choice(inliers, len(inliers)), rng.choice(outliers, len(outliers))) for _ in range(bootstrap)
        ]
        low, high = interval(torch.tensor(replicates), auc, lower=0.0, upper=1.0)
        row |= {f"anomaly_auc_{kind}": auc, f"anomaly_auc_{kind}_ci_low": low, f"anomaly_auc_{kind}_ci_high": high}
    return row


def latent_activity(model, images: torch.Tensor, labels=None) -> dict:
    """Per latent dimension over ``images`` (``posterior``): mean KL(q(z_i|x) ‖ N(0, 1)) in nats, the variance of
    the posterior mean across images, and whether the dimension is *active* — the one rule used everywhere
    (metric rows, charts, findings): Var_x(E_q[z_i]) > ``ACTIVE_UNIT_THRESHOLD``."""
    usage = latent_usage(model, images, labels=labels)
    active = [v > ACTIVE_UNIT_THRESHOLD for v in usage["mean_variance_per_dim"]]
    return {
        "kl_per_dim": usage["kl_per_dim"],
        "mean_variance_per_dim": usage["mean_variance_per_dim"],
        "active": active,
        "active_units": usage["active_units"],
        "threshold": ACTIVE_UNIT_THRESHOLD,
    }


@torch.inference_mode()
def anatomy(model, image: torch.Tensor, draws: int, generator: torch.Generator, label=None) -> dict:
    """The VAE's mechanism on one image (1, C, H, W): the posterior's μ and σ per latent dimension, ``draws``
    reparameterised codes z = μ + σ·ε and their decodes, the reconstruction from μ, and this image's two loss
    terms in nats — the reconstruction term E_q[−log p(x|z)] (averaged over the draws) and KL(q(z|x) ‖ N(0, I)).
    A model with an encoder but no posterior gives its single code (σ, draws and terms are None)."""
    x = image.to(model.device)
    kw = label_kwargs(model, None if label is None else [int(label)])
    if not model.capabilities.posterior:
        code = model.encode(x, **kw)
        return {
            "mu": code[0].cpu(),
            "sigma": None,
            "z": None,
            "decodes": None,
            "reconstruction": model.decode(code, **kw).clamp(0, 1).cpu(),
            "recon_nats": None,
            "kl_nats": None,
        }
    mu, logvar = model.posterior(x, **kw)
    sigma = (0.5 * logvar).exp()
    eps = torch.randn(draws, mu.shape[1], generator=generator).to(mu.device)
    z = mu + sigma * eps  # (draws, d)
    many = label_kwargs(model, None if label is None else [int(label)] * draws)
    logits = model.decode_logits(z, **many)
    recon_nats = -model.log_likelihood(logits, x.expand(draws, *x.shape[1:])).mean()
    return {
        "mu": mu[0].cpu(),
        "sigma": sigma[0].cpu(),
        "z": z.cpu(),
        "decodes": model.decode(z, **many).clamp(0, 1).cpu(),
        "reconstruction": model.decode(mu, **kw).clamp(0, 1).cpu(),
        "recon_nats": float(recon_nats),
        "kl_nats": float(gaussian_kl(mu, logvar).sum()),
    }


# -- readings of history.csv -----------------------------------------------------------------------------------
def loss_balance(history: pd.DataFrame) -> float | None:
    """Mean D(real) − D(fake) over the end of training: 0 = D cannot tell them apart, 1 = D wins outright.
    None without ``d_real``/``d_fake`` columns."""
    if not {"d_real", "d_fake"} <= set(history.columns) or history.empty:
        return None
    tail = history_tail(history)
    return float(tail["d_real"].mean() - tail["d_fake"].mean())


def loss_balance_alarms(history: pd.DataFrame) -> list[str]:
    """Plain-language warnings when the discriminator wins outright (needs ``d_real``/``d_fake`` columns)."""
    gap = loss_balance(history)
    if gap is None or gap <= D_WINS_GAP:
        return []
    return [
        f"the discriminator wins outright (D(real) − D(fake) = {gap:.2f} over the last "
        f"{HISTORY_TAIL_FRACTION:.0%} of the steps), so the generator gets almost no gradient. "
        "Try --diffaug, --spectral-norm or a lower --lr-d."
    ]


def mode_collapse_alarms(row: dict | None, num_classes: int, capabilities=None) -> list[str]:
    """A warning when the samples hit fewer than ``COLLAPSE_MODE_FRACTION`` of the classes. For a model whose
    codes are not pulled towards its prior (an encoder without a posterior) drawn from that prior, the cause is
    not mode collapse: N(0, I) draws land in the holes between the codes the decoder knows."""
    modes = (row or {}).get("modes")
    if modes is None or not num_classes or modes >= num_classes * COLLAPSE_MODE_FRACTION:
        return []
    found = f"the samples fall into only {modes:g} of {num_classes} classes"
    prior_holes = (
        capabilities is not None
        and capabilities.encoder
        and not capabilities.posterior
        and (row or {}).get("sampler", "prior") == "prior"
    )
    if prior_holes:
        return [
            f"{found}: draws from N(0, I) land in holes of this autoencoder's code space (nothing pulled its codes "
            "towards the prior), not mode collapse — try the GMM sampler, fitted to its codes."
        ]
    return [f"{found} (mode collapse)."]


FLUCTUATION_BLOCKS = 10


def loss_fluctuation(history: pd.DataFrame, column: str) -> list[float] | None:
    """Std / |mean| of ``column`` in each of ``FLUCTUATION_BLOCKS`` consecutive blocks of the end of training:
    how much a model's own objective still jumps around relative to its size, once per block so that two runs
    can be compared with an interval. None when the history is too short (fewer than 4 rows per block)."""
    if column not in history.columns:
        return None
    tail = history_tail(history)[column].astype(float).to_numpy()
    if len(tail) < 4 * FLUCTUATION_BLOCKS:
        return None
    blocks = [
        tail[i * len(tail) // FLUCTUATION_BLOCKS : (i + 1) * len(tail) // FLUCTUATION_BLOCKS]
        for i in range(FLUCTUATION_BLOCKS)
    ]
    return [float(block.std(ddof=1) / max(abs(block.mean()), 1e-12)) for block in blocks]


def rate_distortion_point(history: pd.DataFrame) -> dict | None:
    """Rate (KL, nats) and distortion (reconstruction, nats) at the end of training, or None without them."""
    if history.empty or not {"kl", "recon"} <= set(history.columns):
        return None
    tail = history_tail(history)
    return {"rate": float(tail["kl"].mean()), "distortion": float(tail["recon"].mean())}
