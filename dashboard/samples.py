"""Tab 1 — Samples: one grid per run, side by side, drawn from the same seed (the same z where latent sizes match)."""

from __future__ import annotations

import math

import streamlit as st
import torch

from . import sidebar
from .images import png_bytes, to_pil
from .state import Run, Selection, per_run_cache, torch_generator

EXPLANATION = """
**Why do VAE samples look blurry?** The VAE decoder is trained to maximise the likelihood of each training
image under a pixel-wise Bernoulli/Gaussian model. When a latent code could have come from several similar
images, the likelihood is best served by their *average*, and averages of digits are soft-edged. A GAN's
generator is never asked to match a pixel average: it is only judged by a discriminator that punishes
anything that does not look real, so its strokes stay crisp — at the risk of covering fewer kinds of digits.

**Why are the autoencoder's samples garbage?** A plain autoencoder is free to put its codes anywhere. Nothing
pulls them towards N(0, I), so most draws from N(0, I) land in the gaps between the regions the encoder
actually uses, and the decoder has never seen such codes. The VAE's KL term is exactly what closes those gaps.
"""


@per_run_cache
@torch.inference_mode()
def sample_images(run: Run, n: int, seed: int) -> torch.Tensor:
    """``n`` prior samples; the latents come from ``seed`` alone, so equal latent sizes share the same z."""
    model = run.model()
    return model.decode(model.prior(n, torch_generator(seed))).clamp(0, 1).cpu()


def sample_grid_png(run: Run, n: int, seed: int, scale: int = 1) -> bytes:
    """The PNG of one run's sample grid (also used by the report export)."""
    return png_bytes(to_pil(sample_images(run, n, seed), nrow=math.isqrt(n), scale=scale))


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    left, right = st.columns([1, 4])
    left.button("Regenerate", on_click=sidebar.bump_seed, help="Draw new latents (the sidebar seed goes up by one).")
    right.caption(f"Seed {selection.seed}: {selection.n_samples} draws from each model's prior N(0, I).")
    columns = st.columns(len(selection.runs))
    for column, run in zip(columns, selection.runs):
        with column:
            st.markdown(f"**{run.label}**")
            picture = to_pil(
                sample_images(run, selection.n_samples, selection.seed),
                nrow=math.isqrt(selection.n_samples),
                scale=selection.scale,
            )
            st.image(picture, caption=f"latent size {run.info['model_config']['latent_dim']}")
            st.download_button(
                "PNG",
                png_bytes(picture),
                file_name=f"{run.name}-samples-seed{selection.seed}.png",
                mime="image/png",
                key=f"samples-png-{run.name}",
            )
    with st.expander("Why do the models' samples differ?"):
        st.markdown(EXPLANATION)
