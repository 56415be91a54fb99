"""Tab 4 — Reconstruction, denoising, anomaly detection and compression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from evaluation import compression, diagnostics

from . import export
from .images import png_bytes, to_pil
from .state import (
    Run,
    Selection,
    class_kwargs,
    latent_codes,
    per_run_cache,
    run_dataset,
    sections,
    shown_errors,
    test_images,
    test_indices,
    torch_generator,
    when_opened,
)

EXPLANATION = """
**Reconstruction** asks the model to reproduce a test image. The VAE and the autoencoder encode then decode
it; the GAN has no encoder, so its best code is searched for by gradient descent (latent inversion) — a GAN
that cannot reconstruct a digit simply cannot produce it (a missed mode). **Denoising**: the encoder maps a
noisy input to a code and the decoder can only draw what it learnt, so the output is always an image of the kind
it was trained on — but the encoder never saw noise, and the noise moves the code. Denoising pays only where the
noise costs more than that: at a small σ the noisy input is usually still closer to the clean image than the
output, at a large σ the output wins (the captions say which happened at the σ chosen). **Anomaly detection**:
a model of digits should find non-digits unlikely. The score is the negative ELBO for a VAE (an upper bound
on −log p(x)), the reconstruction error for an autoencoder and the discriminator's "fake" logit for a GAN.
ROC AUC = 1 means the score separates digits from the odd inputs perfectly, 0.5 means not at all, and below 0.5
the score is inverted: it finds the odd inputs *more* normal than digits (a discriminator often does, because it
only ever learnt to tell real digits from its own generator's fakes, not from noise).

**Compression**: a model with an encoder is also a lossy compressor. Its code, rounded and entropy-coded under
the prior, costs a few dozen bits per image; the Compression part plots bits per image against PSNR beside JPEG,
WebP and PNG on the same test images. At those few dozen bits the pixel codecs have nothing to offer, while at
higher rates they keep approaching the exact pixels and the model's PSNR stays capped by its decoder's blur.
"""

COMPRESSION_EXPLANATION = """
**Compression**: is a VAE a good lossy compressor of these images? Its encoder turns a test image into a few
numbers (the posterior mean). Rounding each to a grid of step Δ and entropy-coding the grid cell with the prior's
probabilities is an actual code (*quantised code*): a cell near the prior's centre is likely and costs few bits. A
coarse Δ costs almost nothing and decodes to a blurry average digit; a finer Δ costs more bits and reconstructs
better, until the decoder's own blur caps the PSNR and the line goes flat. The star is the *bits-back bound*,
KL(q(z|x) ‖ p(z)) / ln 2: the rate bits-back coding reaches, but only over a long chain of images — it is not a file
for one image. JPEG and WebP code pixels and know nothing of digits: at the few dozen bits a model's code needs they
have nothing to offer (a JPEG's headers alone cost thousands of bits on a 28×28 picture; the dotted lines leave out
the headers a collection of images could share), while at higher rates they keep approaching the exact pixels and
leave the model's capped PSNR far behind. PNG is lossless: a vertical line at its size. The autoencoder was trained
without a prior, so its codes are costed under a Gaussian fitted to its training codes (a coder built after
training); a class-conditional model also pays log2(classes) bits for the label. Rates are bits per image, here and
in the Sweeps tab's β rate–distortion chart (there the bits-back rate, KL / ln 2, averaged over the last training
batches rather than measured on these test images).
"""
COMPRESSION_N = compression.DEFAULT_N


@per_run_cache
def reconstruct(run: Run, indices: tuple[int, ...]) -> torch.Tensor:
    model = run.model()
    codes = latent_codes(run, indices)  # outside inference mode: the GAN's inversion needs gradients
    kw = class_kwargs(run, test_images(run, indices)[1])
    with torch.inference_mode():
        return model.decode(codes.to(model.device), **kw).clamp(0, 1).cpu()


@per_run_cache
def anomaly_score_sets(run: Run, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The scores of the test images the metric table's anomaly AUCs use, and of each kind of odd input made from
    them; higher = odder. At seed 0 the page shows exactly the table's AUCs."""
    images = diagnostics.anomaly_test_images(run_dataset(run).test)
    return diagnostics.anomaly_score_sets(run.model(), images, seed)


def auc_note(auc: float) -> str:
    """What the ROC AUC says, including when it is below 0.5 (the score ranks the odd inputs as more normal)."""
    if auc < 0.5:
        return (
            f"ROC AUC {auc:.3f} < 0.5: this score ranks the odd inputs as *more* normal than the real images — "
            f"it is inverted for this kind of input (1 − AUC = {1 - auc:.3f} if read the other way round)."
        )
    return f"ROC AUC {auc:.3f} (1 = separates perfectly, 0.5 = chance)."


def anomaly_figure(run: Run, inliers: np.ndarray, outliers: np.ndarray, kind: str) -> tuple[go.Figure, float]:
    auc = diagnostics.roc_auc(inliers, outliers)
    figure = go.Figure()
    figure.add_histogram(x=inliers, name="test images", opacity=0.65, nbinsx=40)
    figure.add_histogram(x=outliers, name=diagnostics.OOD_KINDS[kind], opacity=0.65, nbinsx=40)
    figure.update_layout(
        barmode="overlay",
        height=340,
        title=f"{run.label}: ROC AUC {auc:.3f}",
        xaxis_title=diagnostics.ANOMALY_SCORE_NAMES[diagnostics.anomaly_score_kind(run.capabilities)],
        yaxis_title="images",
        legend={"orientation": "h", "y": -0.3},
        margin={"b": 90},
    )
    return figure, auc


def strip(images: torch.Tensor, count: int, scale: int, caption: str) -> bytes:
    """One row of images at their own size (a caption wider than the row must not stretch it: the rows of a part
    stay aligned, image under image), shown; its PNG is returned for a download."""
    picture = to_pil(images, nrow=count, scale=scale)
    png = png_bytes(picture)
    st.image(png, caption=caption, width=picture.width, output_format="PNG")
    return png


def render_reconstructions(selection: Selection, count: int) -> None:
    reference = selection.runs[0]
    generators_only = [run for run in selection.runs if not run.capabilities.encoder]
    invert_gans = bool(generators_only) and st.checkbox(
        "Also reconstruct with the GAN (latent inversion: a few seconds per run)",
        key="recon_invert",
        help="The GAN has no encoder; its codes are found by gradient descent on z.",
    )
    indices = test_indices(reference, count, selection.seed)
    originals, _ = test_images(reference, indices)
    strip(originals, count, selection.scale, "originals (test split)")
    errors = {}
    for run in selection.runs:
        if run.info["dataset"] != reference.info["dataset"]:
            st.caption(f"{run.label} was trained on another dataset; skipped here.")
            continue
        if run in generators_only and not invert_gans:
            continue
        recon = reconstruct(run, indices)
        errors[run.name] = (recon - originals).pow(2).flatten(1).mean(1).numpy()
        method = "encode → decode" if run.capabilities.encoder else "latent inversion"
        png = strip(recon, count, selection.scale, f"{run.label} — {method}; mean MSE {errors[run.name].mean():.4f}")
        st.download_button(
            "PNG",
            png,
            file_name=f"{run.name}-reconstructions.png",
            mime="image/png",
            key=f"recon-png-{run.name}",
        )
    table = pd.DataFrame(errors, index=[f"test #{i}" for i in indices]).T
    if errors:
        st.caption("Per-image mean squared error (pixels in [0, 1]); lower is better.")
        st.table(table.style.format("{:.4f}"))


def render_denoising(selection: Selection, count: int, encoders: list[Run]) -> None:
    noise = st.slider("Noise level σ", 0.0, 1.0, 0.4, 0.05, key="denoise_sigma")
    reference = encoders[0]
    clean, clean_labels = test_images(reference, test_indices(reference, count, selection.seed + 1))
    noisy = diagnostics.noisy_copies(clean, noise, torch_generator(selection.seed))
    strip(clean, count, selection.scale, "clean targets (test split)")
    strip(noisy, count, selection.scale, f"noisy inputs (σ = {noise:.2f})")
    for run in encoders:
        if run.info["dataset"] != reference.info["dataset"]:
            continue
        result = diagnostics.denoise(run.model(), clean, noisy, class_kwargs(run, clean_labels).get("labels"))
        verdict = (
            "closer to the clean images than the noisy input"
            if result["helps"]
            else "**further** from the clean images than the noisy input itself: at this σ it does not denoise"
        )
        strip(result["output"], count, selection.scale, f"{run.label} output")
        st.caption(
            f"{run.label}: MSE to the clean images {result['output_mse']:.4f} vs {result['input_mse']:.4f} for the "
            f"noisy input — {verdict}."
        )


def render_anomalies(selection: Selection) -> None:
    kind = st.radio(
        "Out-of-distribution inputs",
        list(diagnostics.OOD_KINDS),
        format_func=diagnostics.OOD_KINDS.get,
        horizontal=True,
        key="ood_kind",
    )
    for i, run in enumerate(selection.runs):
        with shown_errors(f"Anomaly detection of {run.label}"):
            inliers, outliers = anomaly_score_sets(run, selection.seed)
            if i == 0:  # the count is the run's test split, at most ANOMALY_IMAGES (500 for mnist5k)
                st.caption(
                    f"{len(inliers)} test images against as many odd inputs of each kind made from them, drawn with "
                    f"the sidebar seed ({selection.seed}); at seed 0 these are the Metrics table's anomaly AUCs."
                )
            figure, auc = anomaly_figure(run, inliers, outliers[kind], kind)
            export.chart(figure, f"{run.name}-anomaly-{kind}-seed{selection.seed}", f"anomaly-{run.name}")
            st.caption(auc_note(auc))


def render_compression(encoders: list[Run]) -> None:
    """The rate–distortion figure of the runs with an encoder and the codecs, as stored in the runs' folders; a
    button measures (and stores) the runs that have none."""
    st.markdown(COMPRESSION_EXPLANATION)
    if not encoders:
        st.info("Compression needs a model with an encoder (VAE or autoencoder).")
        return
    rows = compression.stored_compression(encoders)
    n = rows[0]["n"] if rows else COMPRESSION_N  # the runs missing are measured on the images the others were
    shown = {row["name"] for row in rows}
    missing = [run for run in encoders if run.name not in shown]
    if missing:
        names = ", ".join(run.label for run in missing)
        if st.button(f"Compute bits per image against PSNR on {n} test images for {names}", key="compression_button"):
            with st.spinner("Encoding, quantising and decoding the test images; JPEG, WebP and PNG on the same ones"):
                compression.compress_runs(encoders, n)
            rows = compression.stored_compression(encoders)
        else:
            st.caption(
                "About a minute for three runs on a 2-core CPU; stored in each run's `compression.json`, which "
                "`python -m evaluation compress RUN…` also writes and the report zip includes."
            )
    if not rows:
        return
    export.chart(compression.compression_figure(rows), f"compression-n{rows[0]['n']}", "compression")
    when_opened(
        "Every point, with its 95 % intervals over images",
        "compression_table",
        lambda: st.dataframe(compression.table(rows), hide_index=True, key="compression-table"),
    )


def warm(selection: Selection) -> None:
    """The default view's slow part: every run's anomaly scores of the test images and of the first odd inputs."""
    for run in selection.runs:
        anomaly_score_sets(run, selection.seed)


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    count = st.slider(
        "Images",
        4,
        16,
        8,
        key="recon_count",
        help="How many test images Reconstructions and Denoising show; Anomaly detection and Compression always "
        "score their own fixed sets of test images, whatever this says.",
    )
    encoders = [run for run in selection.runs if run.capabilities.encoder]

    def denoising():
        if encoders:
            render_denoising(selection, count, encoders)
        else:
            st.info("Denoising needs a model with an encoder (VAE or autoencoder).")

    sections(
        {
            "Reconstructions": lambda: render_reconstructions(selection, count),
            "Denoising": denoising,
            "Anomaly detection": lambda: render_anomalies(selection),
            "Compression": lambda: render_compression(encoders),
        },
        key="recon_part",
    )
    with st.expander("What these experiments show"):
        st.markdown(EXPLANATION)
