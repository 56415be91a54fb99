"""Tab 1 — Samples: one grid per run, side by side, drawn from the same seed (the same z where latent sizes match)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from generators.samplers import SAMPLERS, latent_sampler, needs_encoder

from . import export, sidebar
from .images import png_bytes, to_pil
from .state import Run, Selection, per_run_cache, run_dataset, shown_errors, torch_generator

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


ONE_ROW_PER_CLASS = "one row per class"
DEFAULT_SAMPLER = "prior"


def class_layout(run: Run, n: int, choice: str) -> tuple[torch.Tensor | None, int]:
    """The labels to condition ``n`` samples on and the grid's row length: None and a square grid for an
    unconditional run; ``choice`` = ONE_ROW_PER_CLASS or a class index (as text) for a conditional one."""
    classes = run.capabilities.num_classes
    if classes is None:
        return None, math.isqrt(n)
    if choice == ONE_ROW_PER_CLASS:
        per_class = max(1, n // classes)
        return torch.arange(classes).repeat_interleave(per_class), per_class
    return torch.full((n,), int(choice) % classes), math.isqrt(n)


@per_run_cache
@torch.inference_mode()
def sample_images(run: Run, n: int, seed: int, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS):
    """Samples and the grid's row length; the latents come from ``seed`` alone, so equal latent sizes share the
    same z (prior). A conditional run draws the classes of ``choice``."""
    model = run.model()
    draw = latent_sampler(model, sampler, run.run_dir, lambda: run_dataset(run).train.float_images())
    labels, nrow = class_layout(run, n, choice)
    if labels is None:
        return model.decode(draw(n, torch_generator(seed))).clamp(0, 1).cpu(), nrow
    return model.decode(draw(len(labels), torch_generator(seed)), labels.to(model.device)).clamp(0, 1).cpu(), nrow


def sample_picture(
    run: Run, n: int, seed: int, scale: int, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS
):
    images, nrow = sample_images(run, n, seed, sampler, choice)
    return to_pil(images, nrow=nrow, scale=scale)


def warm(selection: Selection) -> None:
    """Draw the grids a new page opens on (the tab's defaults), so they are in the cache before it asks."""
    for run in selection.runs:
        sample_images(run, selection.n_samples, selection.seed, DEFAULT_SAMPLER, ONE_ROW_PER_CLASS)


@per_run_cache
def sample_grid_png(
    run: Run, n: int, seed: int, scale: int = 1, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS
) -> bytes:
    """The PNG of one run's sample grid, encoded once per setting (a rerun that shows it again only sends its
    address); also used by the report export."""
    return png_bytes(sample_picture(run, n, seed, scale, sampler, choice))


def samplers_for(runs) -> list[str]:
    """Samplers every selected run can use (a fitted sampler needs an encoder)."""
    if all(run.capabilities.encoder for run in runs):
        return list(SAMPLERS)
    return [kind for kind in SAMPLERS if not needs_encoder(kind)]


def samples_figure(selection: Selection, sampler: str, choice: str = ONE_ROW_PER_CLASS) -> go.Figure:
    """One labelled figure: a column per run, the same seed (and latents, where the sizes match)."""
    panels = [
        (run.label, np.asarray(sample_picture(run, selection.n_samples, selection.seed, 2, sampler, choice)))
        for run in selection.runs
    ]
    return export.image_panels(
        panels, f"Samples ({sampler} sampler, seed {selection.seed}, {draws_caption(selection, choice)})"
    )


def draws_count(run: Run, n: int, choice: str) -> int:
    """How many images ``run``'s grid holds: ``n``, or a whole number of rows per class for a conditional run."""
    labels, _ = class_layout(run, n, choice)
    return n if labels is None else len(labels)


def draws_caption(selection: Selection, choice: str) -> str:
    """ "64 draws from each model", or what each run really shows when one row per class rounds ``n`` down."""
    counts = {run.label: draws_count(run, selection.n_samples, choice) for run in selection.runs}
    if len(set(counts.values())) == 1:
        return f"{next(iter(counts.values()))} draws from each model"
    return "draws per model: " + ", ".join(f"{label} {count}" for label, count in counts.items())


def class_choice(selection: Selection) -> str:
    """For class-conditional runs: draw one row per class, or only the picked class (a no-op otherwise)."""
    conditional = [run for run in selection.runs if run.capabilities.conditional]
    if not conditional:
        return ONE_ROW_PER_CLASS
    names = conditional[0].info.get("class_names") or [str(k) for k in range(conditional[0].capabilities.num_classes)]
    options = [ONE_ROW_PER_CLASS, *(str(k) for k in range(len(names)))]
    return st.selectbox(
        "Class to draw (class-conditional models)",
        options,
        key="samples_class",
        format_func=lambda o: o if o == ONE_ROW_PER_CLASS else f"class {names[int(o)]}",
        help="A conditional model draws the class it is asked for; unconditional ones ignore this.",
    )


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    c1, c2, c3, c4 = st.columns([1, 2, 2, 3])
    if c1.button("Regenerate", on_click=sidebar.bump_seed, help="Draw new latents (the sidebar seed goes up by one)."):
        st.rerun(scope="app")  # this tab is a fragment: the sidebar (and every tab) must see the new seed
    options = samplers_for(selection.runs)
    sampler = (
        c2.segmented_control(
            "Sampler",
            options,
            default=DEFAULT_SAMPLER,
            key="samples_sampler",
            help="prior: z ~ N(0, I). gmm / two-stage: a sampler fitted to the encoded "
            "training set (models with an encoder only).",
        )
        or DEFAULT_SAMPLER
    )
    per_row = c3.slider(
        "Grids per row",
        1,
        4,
        min(2, len(selection.runs)),
        key="samples_per_row",
        help="Fewer grids per row = larger digits.",
    )
    choice = class_choice(selection)
    c4.caption(f"Seed {selection.seed}: {draws_caption(selection, choice)} ({sampler} sampler).")
    for start in range(0, len(selection.runs), per_row):
        columns = st.columns(per_row)
        for column, run in zip(columns, selection.runs[start : start + per_row]):
            with column, shown_errors(f"Samples of {run.label}"):  # one failing run leaves the others' grids
                st.markdown(f"**{run.label}**")
                png = sample_grid_png(run, selection.n_samples, selection.seed, selection.scale, sampler, choice)
                st.image(
                    png,
                    caption=f"latent size {run.info['model_config']['latent_dim']}",
                    width="stretch",
                    output_format="PNG",
                )
                st.download_button(
                    "PNG",
                    png,
                    mime="image/png",
                    on_click="ignore",
                    key=f"samples-png-{run.name}",
                    file_name=f"{run.name}-samples-{sampler}-seed{selection.seed}-n{selection.n_samples}.png",
                )
    st.markdown("**All models in one labelled figure** (for a report)")
    export.download_buttons(
        lambda: samples_figure(selection, sampler, choice), f"samples-{sampler}-seed{selection.seed}", "samples-figure"
    )
    with st.expander("Why do the models' samples differ?"):
        st.markdown(EXPLANATION)
