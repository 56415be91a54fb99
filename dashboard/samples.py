"""Tab 1 — Samples: one grid per run, side by side, drawn from the same seed (the same z where latent sizes match)."""

from __future__ import annotations

import streamlit as st

from evaluation import pictures
from evaluation.pictures import DEFAULT_SAMPLER, ONE_ROW_PER_CLASS
from generators.samplers import SAMPLERS, needs_encoder

from . import export, sidebar
from .state import Selection, per_run_cache, shown_errors

EXPLANATION = """
**Why do VAE samples look blurry?** The VAE decoder is trained to maximise the likelihood of each training
image under a pixel-wise Bernoulli/Gaussian model. When a latent code could have come from several similar
images, the likelihood is best served by their *average*, and averages of images are soft-edged (a digit's
strokes, a sprite's corners). A GAN's
generator is never asked to match a pixel average: it is only judged by a discriminator that punishes
anything that does not look real, so its edges stay crisp — at the risk of covering fewer kinds of images
(fewer digit classes, fewer shapes).

**Why are the autoencoder's samples garbage?** A plain autoencoder is free to put its codes anywhere. Nothing
pulls them towards N(0, I): its codes may spread far wider (the Interpolation tab gives the spread), so draws
from N(0, I) land in a small region the encoder may hardly use, or in the gaps between the regions it does use,
and the decoder has never seen such codes. The VAE's KL term is exactly what closes those gaps.
"""


def sample_images(run, n: int, seed: int, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS):
    """The run's samples and the grid's row length (``evaluation.pictures.sample_images``), from the shared
    cache (``Run.sample_images``)."""
    return run.sample_images(n, seed, sampler, choice)


def warm(selection: Selection) -> None:
    """Draw the grids a new page opens on (the tab's defaults), so they are in the cache before it asks."""
    for run in selection.runs:
        run.sample_images(selection.n_samples, selection.seed, DEFAULT_SAMPLER, ONE_ROW_PER_CLASS)


sample_grid_png = per_run_cache(pictures.sample_grid_png)  # encoded once per setting (a rerun only sends its address)


def samplers_for(runs) -> list[str]:
    """Samplers every selected run can use (a fitted sampler needs an encoder)."""
    if all(run.capabilities.encoder for run in runs):
        return list(SAMPLERS)
    return [kind for kind in SAMPLERS if not needs_encoder(kind)]


def samples_figure(selection: Selection, sampler: str, choice: str = ONE_ROW_PER_CLASS):
    """One labelled figure: a column per run, the same seed (and latents, where the sizes match)."""
    return pictures.samples_figure(selection.runs, selection.n_samples, selection.seed, sampler, choice)


def draws_caption(selection: Selection, choice: str) -> str:
    return pictures.draws_caption(selection.runs, selection.n_samples, choice)


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
    sampler = sampler_choice(c2, selection.runs)
    per_row = c3.slider(
        "Grids per row",
        1,
        4,
        min(2, len(selection.runs)),
        key="samples_per_row",
        help="Fewer grids per row = larger images.",
    )
    explain_hidden_samplers(c2, selection.runs)
    choice = class_choice(selection)
    c4.caption(f"Seed {selection.seed}: {draws_caption(selection, choice)} ({sampler} sampler).")
    for start in range(0, len(selection.runs), per_row):
        for column, run in zip(st.columns(per_row), selection.runs[start : start + per_row]):
            with column, shown_errors(f"Samples of {run.label}"):  # one failing run leaves the others' grids
                render_grid(run, selection, sampler, choice)
    st.markdown("**All models in one labelled figure** (for a report)")
    export.download_buttons(
        lambda: samples_figure(selection, sampler, choice), f"samples-{sampler}-seed{selection.seed}", "samples-figure"
    )
    with st.expander("Why do the models' samples differ?"):
        st.markdown(EXPLANATION)


def sampler_choice(column, runs) -> str:
    """The sampler every grid draws with, among those every selected run can use."""
    return (
        column.segmented_control(
            "Sampler",
            samplers_for(runs),
            default=DEFAULT_SAMPLER,
            key="samples_sampler",
            help="prior: z ~ N(0, I). gmm / two-stage: a sampler fitted to the encoded "
            "training set (models with an encoder only).",
        )
        or DEFAULT_SAMPLER
    )


def explain_hidden_samplers(column, runs) -> None:
    """Say which samplers are not offered and which runs (those without an encoder) to deselect to get them."""
    options = samplers_for(runs)
    if len(options) < len(SAMPLERS):
        hidden = " and ".join(kind for kind in SAMPLERS if kind not in options)
        without = ", ".join(run.name for run in runs if not run.capabilities.encoder)
        column.caption(
            f"{hidden} fit a sampler to the encoded training set, so every selected run needs an encoder: "
            f"deselect {without} to use them."
        )


def render_grid(run, selection: Selection, sampler: str, choice: str) -> None:
    """One run's sample grid, with its latent size and its PNG download."""
    st.markdown(f"**{run.label}**")
    fitting = f"; its {sampler} sampler is fitted first if it has none (a minute or two, once)"
    with st.spinner(f"Drawing {run.name}" + (fitting if sampler != DEFAULT_SAMPLER else "") + "…"):
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
