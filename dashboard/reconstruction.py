"""Tab 4 — Reconstruction, denoising and anomaly detection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
import torch.nn.functional as F

from generators.vae import gaussian_kl

from .images import png_bytes, to_pil
from .state import Run, Selection, latent_codes, per_run_cache, run_dataset, test_images, test_indices, torch_generator

ANOMALY_IMAGES = 300
OOD_KINDS = {
    "noise": "uniform noise images",
    "inverted": "test digits with black and white swapped",
    "shuffled": "test digits with their pixels shuffled",
}

EXPLANATION = """
**Reconstruction** asks the model to reproduce a test image. The VAE and the autoencoder encode then decode
it; the GAN has no encoder, so its best code is searched for by gradient descent (latent inversion) — a GAN
that cannot reconstruct a digit simply cannot produce it (a missed mode). **Denoising**: the encoder maps a
noisy input to a code near the clean digit's, so the decoder outputs a cleaner digit. **Anomaly detection**:
a model of digits should find non-digits unlikely. The score is the negative ELBO for a VAE (an upper bound
on −log p(x)), the reconstruction error for an autoencoder and the discriminator's "fake" logit for a GAN.
ROC AUC = 1 means the score separates digits from the odd inputs perfectly, 0.5 means not at all.
"""


@per_run_cache
def reconstruct(run: Run, indices: tuple[int, ...]) -> torch.Tensor:
    model = run.model()
    codes = latent_codes(run, indices)  # outside inference mode: the GAN's inversion needs gradients
    with torch.inference_mode():
        return model.decode(codes.to(model.device)).clamp(0, 1).cpu()


def out_of_distribution(images: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    generator = torch_generator(seed)
    if kind == "noise":
        return torch.rand(images.shape, generator=generator)
    if kind == "inverted":
        return 1.0 - images
    flat = images.flatten(1)
    order = torch.randperm(flat.shape[1], generator=generator)
    return flat[:, order].view_as(images)


@per_run_cache
@torch.inference_mode()
def anomaly_scores(run: Run, kind: str | None, seed: int) -> np.ndarray:
    """Scores of the first test images (``kind`` None) or of their out-of-distribution version; higher = odder."""
    split = run_dataset(run).test
    images, _ = split[list(range(min(ANOMALY_IMAGES, len(split))))]
    if kind is not None:
        images = out_of_distribution(images, kind, seed)
    model = run.model()
    if run.model_name == "vae":
        mu, logvar = model.posterior(images)
        logits = model.decode_logits(mu)
        recon = F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
        return (recon + gaussian_kl(mu, logvar).sum(1)).numpy()
    if model.has_encoder:
        return (model.decode(model.encode(images)) - images).pow(2).flatten(1).sum(1).numpy()
    return (-model.discriminator(images * 2 - 1).flatten()).numpy()


def score_name(run: Run) -> str:
    if run.model_name == "vae":
        return "negative ELBO (nats, decoder mean)"
    return "reconstruction error (sum of squares)" if run.model().has_encoder else "−D(x) logit"


def anomaly_figure(run: Run, inliers: np.ndarray, outliers: np.ndarray, kind: str) -> tuple[go.Figure, float]:
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(np.r_[np.zeros(len(inliers)), np.ones(len(outliers))], np.r_[inliers, outliers]))
    figure = go.Figure()
    figure.add_histogram(x=inliers, name="test digits", opacity=0.65, nbinsx=40)
    figure.add_histogram(x=outliers, name=OOD_KINDS[kind], opacity=0.65, nbinsx=40)
    figure.update_layout(
        barmode="overlay",
        height=300,
        title=f"{run.label}: ROC AUC {auc:.3f}",
        xaxis_title=score_name(run),
        yaxis_title="images",
        legend={"orientation": "h"},
    )
    return figure, auc


def render_reconstructions(selection: Selection, count: int) -> None:
    reference = selection.runs[0]
    generators_only = [run for run in selection.runs if not run.model().has_encoder]
    invert_gans = bool(generators_only) and st.checkbox(
        "Also reconstruct with the GAN (latent inversion: a few seconds per run)",
        key="recon_invert",
        help="The GAN has no encoder; its codes are found by gradient descent on z.",
    )
    indices = test_indices(reference, count, selection.seed)
    originals, _ = test_images(reference, indices)
    st.image(to_pil(originals, nrow=count, scale=selection.scale), caption="originals (test split)")
    errors = {}
    for run in selection.runs:
        if run.info["dataset"] != reference.info["dataset"]:
            st.caption(f"{run.label} was trained on another dataset; skipped here.")
            continue
        if run in generators_only and not invert_gans:
            continue
        recon = reconstruct(run, indices)
        errors[run.name] = (recon - originals).pow(2).flatten(1).mean(1).numpy()
        picture = to_pil(recon, nrow=count, scale=selection.scale)
        method = "encode → decode" if run.model().has_encoder else "latent inversion"
        st.image(picture, caption=f"{run.label} — {method}; mean MSE {errors[run.name].mean():.4f}")
        st.download_button(
            "PNG",
            png_bytes(picture),
            file_name=f"{run.name}-reconstructions.png",
            mime="image/png",
            key=f"recon-png-{run.name}",
        )
    table = pd.DataFrame(errors, index=[f"test #{i}" for i in indices]).T
    if errors:
        st.caption("Per-image mean squared error (pixels in [0, 1]); lower is better.")
        st.dataframe(table.style.format("{:.4f}"), key="recon-errors")


def render_denoising(selection: Selection, count: int, encoders: list[Run]) -> None:
    noise = st.slider("Noise level σ", 0.0, 1.0, 0.4, 0.05, key="denoise_sigma")
    reference = encoders[0]
    clean, _ = test_images(reference, test_indices(reference, count, selection.seed + 1))
    noisy = (clean + noise * torch.randn(clean.shape, generator=torch_generator(selection.seed))).clamp(0, 1)
    st.image(to_pil(noisy, nrow=count, scale=selection.scale), caption=f"noisy inputs (σ = {noise:.2f})")
    for run in encoders:
        if run.info["dataset"] != reference.info["dataset"]:
            continue
        with torch.inference_mode():
            model = run.model()
            output = model.decode(model.encode(noisy)).clamp(0, 1)
        error = (output - clean).pow(2).mean().item()
        st.image(
            to_pil(output, nrow=count, scale=selection.scale),
            caption=f"{run.label} output; MSE to the clean digits {error:.4f} "
            f"(noisy input: {(noisy - clean).pow(2).mean().item():.4f})",
        )


def render_anomalies(selection: Selection) -> None:
    kind = st.radio(
        "Out-of-distribution inputs", list(OOD_KINDS), format_func=OOD_KINDS.get, horizontal=True, key="ood_kind"
    )
    for run in selection.runs:
        inliers, outliers = anomaly_scores(run, None, selection.seed), anomaly_scores(run, kind, selection.seed)
        figure, _auc = anomaly_figure(run, inliers, outliers, kind)
        st.plotly_chart(figure, key=f"anomaly-{run.name}")


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    count = st.slider("Images", 4, 16, 8, key="recon_count")
    render_reconstructions(selection, count)
    st.subheader("Denoising")
    encoders = [run for run in selection.runs if run.model().has_encoder]
    if encoders:
        render_denoising(selection, count, encoders)
    else:
        st.info("Denoising needs a model with an encoder (VAE or autoencoder).")
    st.subheader("Anomaly detection")
    render_anomalies(selection)
    with st.expander("What these experiments show"):
        st.markdown(EXPLANATION)
