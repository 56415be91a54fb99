"""Tab 2 — Interpolation: walk from one latent to another and decode every step, one aligned strip per run."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import streamlit as st
import torch

from . import export
from .codes import prior_scale_note, trained_classifier
from .images import gif_bytes, png_bytes, to_pil
from .state import (
    Run,
    Selection,
    class_kwargs,
    fixed_class,
    latent_codes,
    per_run_cache,
    run_dataset,
    test_images,
    torch_generator,
)

EXPLANATION = """
A smooth latent space decodes every point between two codes to a plausible image, and neighbouring points
to similar images. **Linear** interpolation cuts straight through the middle of N(0, I), where a
high-dimensional Gaussian has almost no mass (its draws live on a shell of radius ≈ √d), so midpoints can
look washed out; **spherical** interpolation (slerp) stays on that shell. The plain autoencoder's codes are
not tied to N(0, I) at all: its random strip stays near the centre of a far wider code cloud (the caption under
it gives the spread), so walk between two real test images to see how it fills the space between its images.
"""

ENDPOINTS = {"random": "two random latents", "real": "two real test images"}  # the first is the default
PATHS = {"slerp": "spherical (slerp)", "linear": "linear"}
DEFAULT_FRAMES = 8
GIF_SCALE = 8  # the animation's frames enlarged 8x (224 px for a digit): big enough for a slide


class Walk(NamedTuple):
    """One interpolation setting: the arguments after the run of ``strip_frames`` and ``strip_pngs``."""

    source: str  # a key of ENDPOINTS
    seed: int
    indices: tuple[int, int]  # the two test images of a real walk
    frames: int
    spherical: bool


def path(z0: torch.Tensor, z1: torch.Tensor, frames: int, spherical: bool) -> torch.Tensor:
    """``frames`` latents from ``z0`` to ``z1`` (1-D codes) inclusive, shape (frames, d).

    Spherical paths fall back to a straight line when the codes are (anti-)parallel, where slerp is undefined.
    """
    t = torch.linspace(0.0, 1.0, frames).view(-1, 1)
    omega = torch.arccos(torch.nn.functional.cosine_similarity(z0, z1, dim=0).clamp(-1.0, 1.0))
    if not spherical or float(torch.sin(omega).abs()) < 1e-6:
        return torch.lerp(z0.view(1, -1), z1.view(1, -1), t)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def endpoints(run: Run, source: str, seed: int, indices: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    if source == "random":
        z = run.model().prior(2, torch_generator(seed)).cpu()
    else:
        z = latent_codes(run, indices)
    return z[0], z[1]


@per_run_cache
def strip_frames(
    run: Run, source: str, seed: int, indices: tuple[int, int], frames: int, spherical: bool
) -> torch.Tensor:
    z0, z1 = endpoints(run, source, seed, indices)  # outside inference mode: the GAN's inversion needs gradients
    model = run.model()
    with torch.inference_mode():
        kw = fixed_class(run, frames, indices[0] if source == "real" else seed)
        if source == "real" and kw:  # a real path keeps the first image's own class
            kw = class_kwargs(run, test_images(run, indices[:1])[1].expand(frames))
        return model.decode(path(z0, z1, frames, spherical).to(model.device), **kw).clamp(0, 1).cpu()


@per_run_cache
def strip_pngs(
    run: Run, source: str, seed: int, indices: tuple[int, int], frames: int, spherical: bool, scale: int
) -> tuple[bytes, tuple[bytes, ...]]:
    """The strip and each frame enlarged, as PNGs encoded once per setting (a rerun only sends addresses)."""
    images = strip_frames(run, source, seed, indices, frames, spherical)
    pictures = tuple(png_bytes(to_pil(image[None], nrow=1, scale=scale * 2)) for image in images)
    return png_bytes(to_pil(images, nrow=frames, scale=scale)), pictures


def warm(selection: Selection) -> None:
    """The default view: every run's strip between two random latents, slerp."""
    for run in selection.runs:
        strip_pngs(run, "random", selection.seed, (0, 1), DEFAULT_FRAMES, True, selection.scale)


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    source, spherical, frames = path_choices()
    indices = real_endpoints(selection.runs[0]) if source == "real" else (0, 1)
    frame = st.slider(
        "Frame",
        0,
        frames - 1,
        frames // 2,
        key="interp_frame",
        help="Shows this step of every run's path large, below its strip.",
    )
    path_name = "slerp" if spherical else "linear"
    ends = f"test{indices[0]}-{indices[1]}" if source == "real" else f"seed{selection.seed}"
    walk = Walk(source, selection.seed, indices, frames, spherical)
    strips = [render_strip(run, walk, frame, selection.scale, f"{ends}-{path_name}") for run in selection.runs]
    st.markdown("**All models in one labelled figure** (rows = models, t = 0 → 1 left to right)")
    between = f"test images #{indices[0]} and #{indices[1]}" if source == "real" else f"seed {selection.seed}"
    title = f"Interpolation ({path_name}, {between})"
    export.download_buttons(
        lambda: strips_figure(strips, frames, title),
        f"interpolation-{ends}-{path_name}",
        "interp-figure",
    )
    render_styles(selection)
    with st.expander("What makes a latent space smooth?"):
        st.markdown(EXPLANATION)


def path_choices() -> tuple[str, bool, int]:
    """The walk's endpoints (random latents or real images), its path (slerp or straight) and its frame count."""
    c1, c2, c3 = st.columns(3)
    source = c1.radio(
        "Endpoints",
        list(ENDPOINTS),
        key="interp_source",
        horizontal=True,
        format_func=ENDPOINTS.get,
    )
    spherical = (
        c2.radio(
            "Path",
            list(PATHS),
            key="interp_path",
            horizontal=True,
            format_func=PATHS.get,
        )
        == "slerp"
    )
    frames = c3.slider("Frames", 3, 16, DEFAULT_FRAMES, key="interp_frames")
    return source, spherical, frames


def real_endpoints(run: Run) -> tuple[int, int]:
    """The two test images a real walk joins, picked by index and shown, with how each model gets their codes."""
    size = len(run_dataset(run).test)
    first, second = default_pair(run)
    a, b = st.columns(2)
    indices = (
        int(a.number_input("First test image", 0, size - 1, first, key="interp_a")),
        int(b.number_input("Second test image", 0, size - 1, second, key="interp_b")),
    )
    originals, _ = test_images(run, indices)
    picture = to_pil(originals, nrow=2, scale=4)
    st.image(
        picture,
        width=picture.width,  # the long caption must not stretch the two originals across the page
        caption=f"the two originals (test images #{indices[0]} and #{indices[1]}): every path runs from a model's "
        "code of the first to its code of the second, so its end frames are the model's reconstructions of them",
        output_format="PNG",
    )
    st.caption(
        "Models with an encoder encode the images; a model without one (the GAN) gets its codes by latent "
        "inversion (gradient descent on z until G(z) matches the image)."
    )
    return indices


def render_strip(run: Run, walk: Walk, frame: int, scale: int, setting: str) -> tuple[str, torch.Tensor]:
    """One run's strip, its ``frame`` enlarged, and the strip's PNG and GIF downloads; returns (label, frames).
    ``setting`` names the endpoints and the path in the file names."""
    frames = walk.frames
    images = strip_frames(run, *walk)
    strip, pictures = strip_pngs(run, *walk, scale)
    st.markdown(f"**{run.label}**")
    st.image(strip, width="stretch", output_format="PNG")
    if walk.source == "real":
        st.caption(end_frames_note(run, walk.indices, images))
    elif note := prior_scale_note(run, "A walk between two N(0, I) draws"):
        st.caption(note + " Choose two real test images as endpoints to walk between codes of its images.")
    left, middle, right = st.columns([1, 1, 3])
    left.image(pictures[frame], caption=f"frame {frame} (t = {frame / (frames - 1):.2f})", output_format="PNG")
    name = f"{run.name}-interpolation-{setting}-{frames}frames"
    middle.download_button("PNG strip", strip, file_name=f"{name}.png", mime="image/png", key=f"interp-png-{run.name}")
    middle.download_button(
        "Animated GIF",
        lambda: gif_bytes([to_pil(image[None], nrow=1, scale=GIF_SCALE) for image in images]),
        file_name=f"{name}.gif",
        mime="image/gif",
        on_click="ignore",
        key=f"interp-gif-{run.name}",
    )
    return run.label, images


def end_frames_note(run: Run, indices: tuple[int, int], images: torch.Tensor) -> str:
    """How far a real walk's end frames are from the two images, and whether the data set's classifier reads each
    end frame as its image's class: a GAN's inversion can miss an image it cannot draw (a 0 that comes back as an
    8), and then its path does not start or end at that image at all."""
    originals, labels = test_images(run, indices)
    ends = images[[0, -1]]
    errors = [float((ends[k] - originals[k]).pow(2).mean()) for k in (0, 1)]
    note = f"End frames against the originals: MSE {errors[0]:.4f} (#{indices[0]}) and {errors[1]:.4f} (#{indices[1]})."
    kept = 1 if run.capabilities.conditional else 2  # a conditional path keeps the first image's class to its end
    if kept == 1:
        note += f" The path keeps #{indices[0]}'s class, so its last frame is #{indices[1]}'s code drawn in that class."
    classifier = trained_classifier(run) if labels is not None else None
    if classifier is None:
        return note
    names = run_dataset(run).class_names or []
    name = lambda k: names[k] if k < len(names) else f"class {k}"  # noqa: E731 - "8", "heart", or "class 3"
    read = classifier.classify(ends[:kept]).tolist()
    missed = [
        f"#{i}'s frame reads as {name(r)}, not {name(int(y))}" for i, r, y in zip(indices, read, labels) if r != y
    ]
    if not missed:
        return note + (
            " The classifier reads both as their images' classes."
            if kept == 2
            else f" The classifier reads the first as #{indices[0]}'s class."
        )
    how = "its encoder" if run.capabilities.encoder else "the latent inversion"
    return note + (
        f" {'; '.join(missed)}: {how} did not reproduce that image's class, so the path does not start (or end) at an "
        "image of it."
    )


def strips_figure(strips: list[tuple[str, torch.Tensor]], frames: int, title: str):
    """The labelled figure of every run's strip, one row per run (``strips``: (label, frames x C x H x W))."""
    panels = [(label, np.asarray(to_pil(images, nrow=frames, scale=2))) for label, images in strips]
    return export.image_panels(panels, title, columns=1)


STYLES = 6


@per_run_cache
@torch.inference_mode()
def style_grid(run: Run, seed: int) -> torch.Tensor:
    """Rows = ``STYLES`` latents z, columns = every class: the same z decoded as each digit (conditional runs)."""
    model = run.model()
    classes = run.capabilities.num_classes
    z = model.prior(STYLES, torch_generator(seed)).cpu()
    codes, labels = z.repeat_interleave(classes, 0), torch.arange(classes).repeat(STYLES)
    return model.decode(codes.to(model.device), labels.to(model.device)).clamp(0, 1).cpu()


def render_styles(selection: Selection) -> None:
    """The classic conditional demo: hold z (the style), change the class (the digit), models side by side."""
    conditional = [run for run in selection.runs if run.capabilities.conditional]
    if not conditional:
        return
    st.subheader("Same z, every class (class-conditional models)")
    st.caption(
        "Each row keeps one latent z and asks for every class in turn: if z carries the style (slant, "
        "stroke width) and the label the digit, a row is one handwriting writing every digit."
    )
    panels = []
    for column, run in zip(st.columns(len(conditional)), conditional):
        images = style_grid(run, selection.seed)
        picture = to_pil(images, nrow=run.capabilities.num_classes, scale=selection.scale)
        column.image(
            picture, caption=f"{run.label}: rows = latents, columns = classes", width="stretch", output_format="PNG"
        )
        panels.append((run.label, np.asarray(to_pil(images, nrow=run.capabilities.num_classes, scale=2))))
    figure = export.image_panels(panels, f"Same z, every class (seed {selection.seed})")
    export.download_buttons(figure, f"same-z-every-class-seed{selection.seed}", "styles-figure")


def default_pair(run: Run) -> tuple[int, int]:
    """Two test images of different classes: the first test image, and the first one of another class (the test
    split may be sorted by class: mnist5k's first 50 are all zeros). (0, 1) when the data set has no labels."""
    labels = run_dataset(run).test.labels
    if labels is None:
        return 0, 1
    others = (labels != labels[0]).nonzero()
    return 0, int(others[0]) if len(others) else 1
