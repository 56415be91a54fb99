"""Tab 3 — Latent space: a 2-D map of the encoded test split, traversals along latent dimensions, KL per dimension."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch

from generators.vae import gaussian_kl

from .images import png_bytes, to_pil
from .state import Run, Selection, per_run_cache, run_dataset, torch_generator

MAP_POINTS = 1000
THUMBNAILS = 80
TRAVERSAL_STEPS = 9
TRAVERSAL_RANGE = 3.0

EXPLANATION = """
Each point is one test image, placed by its latent code (reduced to 2-D). The VAE's KL term pulls all codes
towards one N(0, I) blob, so classes touch and the space between them decodes to something sensible; the
autoencoder's codes form separated islands with empty sea in between. A **traversal** changes one latent
dimension from −3 to +3 while keeping the others fixed: in a VAE a few dimensions carry meaning (stroke width,
slant, digit identity) and the dimensions whose KL is ≈ 0 do nothing — the encoder switched them off
("posterior collapse" of that dimension). A larger β switches off more of them.
"""


@per_run_cache
@torch.inference_mode()
def encoded_test_split(run: Run) -> tuple[np.ndarray, torch.Tensor, np.ndarray | None]:
    """Codes (N, d), images and labels of up to ``MAP_POINTS`` test images."""
    split = run_dataset(run).test
    count = min(len(split), MAP_POINTS)
    images, labels = split[list(range(count))]
    codes = run.model().encode(images).cpu().numpy()
    return codes, images, (labels.numpy() if split.labels is not None else None)


@st.cache_data(max_entries=16, show_spinner="Projecting the codes to 2-D…")
def project(codes: np.ndarray, method: str) -> np.ndarray:
    if codes.shape[1] <= 2:
        return np.pad(codes, ((0, 0), (0, 2 - codes.shape[1])))
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        return TSNE(2, init="pca", random_state=0, perplexity=min(30, len(codes) - 1)).fit_transform(codes)
    from sklearn.decomposition import PCA

    return PCA(2, random_state=0).fit_transform(codes)


def _data_uri(image: torch.Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(to_pil(image[None], nrow=1))).decode()


@per_run_cache
def latent_map(run: Run, method: str, thumbnails: bool) -> go.Figure:
    """Scatter of the 2-D codes coloured by class; optional thumbnails of some images drawn at their points."""
    codes, images, labels = encoded_test_split(run)
    xy = project(codes, method)
    names = run.info.get("class_names")
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "test image": np.arange(len(xy))})
    frame["class"] = [names[i] if names else str(i) for i in labels] if labels is not None else "?"
    figure = px.scatter(
        frame,
        x="x",
        y="y",
        color="class",
        hover_data={"test image": True, "x": False, "y": False},
        title=f"{run.label}: encoded test split ({method})",
        height=520,
        category_orders={"class": list(names) if names else None},
    )
    figure.update_traces(marker={"size": 5, "opacity": 0.8})
    if thumbnails:
        span = float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-6)) * 0.05
        shown = np.linspace(0, len(xy) - 1, min(THUMBNAILS, len(xy))).astype(int)
        figure.layout.images = [  # set at once: one add_layout_image call per picture is 100x slower
            dict(
                source=_data_uri(images[i]),
                x=xy[i, 0],
                y=xy[i, 1],
                xref="x",
                yref="y",
                sizex=span,
                sizey=span,
                xanchor="center",
                yanchor="middle",
                layer="above",
            )
            for i in shown
        ]
    return figure


@per_run_cache
@torch.inference_mode()
def traversal(run: Run, dims: tuple[int, ...], seed: int) -> torch.Tensor:
    """Rows = chosen dimensions, columns = values from -3 to 3 around one prior draw."""
    model = run.model()
    base = model.prior(1, torch_generator(seed)).cpu()[0]
    values = torch.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
    codes = base.repeat(len(dims), TRAVERSAL_STEPS, 1)
    for row, dim in enumerate(dims):
        codes[row, :, dim] = values
    return model.decode(codes.view(-1, base.numel()).to(model.device)).clamp(0, 1).cpu()


@per_run_cache
@torch.inference_mode()
def kl_per_dimension(run: Run) -> np.ndarray:
    """Mean KL(q(z|x) || N(0, 1)) of each latent dimension over the test split, in nats."""
    split = run_dataset(run).test
    images, _ = split[list(range(min(len(split), MAP_POINTS)))]
    mu, logvar = run.model().posterior(images)
    return gaussian_kl(mu, logvar).mean(0).cpu().numpy()


def kl_figure(run: Run, kl: np.ndarray) -> go.Figure:
    figure = px.bar(
        x=np.arange(len(kl)),
        y=kl,
        labels={"x": "latent dimension", "y": "KL (nats)"},
        title=f"{run.label}: KL per latent dimension (≈ 0 means the dimension is unused)",
        height=320,
    )
    return figure


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    encoders = [run for run in selection.runs if run.model().has_encoder]
    c1, c2 = st.columns(2)
    method = c1.radio(
        "Projection",
        ["PCA", "t-SNE"],
        key="latent_method",
        horizontal=True,
        help="t-SNE keeps neighbourhoods but distorts distances and takes a few seconds.",
    )
    thumbnails = c2.checkbox("Draw some images on the map", value=True, key="latent_thumbs")
    if not encoders:
        st.info("None of the selected runs has an encoder (a GAN maps z to images only), so there is no map.")
    for run in encoders:
        st.plotly_chart(latent_map(run, method, thumbnails), key=f"latent-map-{run.name}")
    st.subheader("Traversals")
    for run in selection.runs:
        latent_dim = run.info["model_config"]["latent_dim"]
        kl = kl_per_dimension(run) if run.model_name == "vae" else None
        ranked = list(np.argsort(-kl)) if kl is not None else list(range(latent_dim))
        default = sorted(int(d) for d in ranked[: min(6, latent_dim)])
        dims = st.multiselect(
            f"Dimensions to traverse — {run.label}",
            list(range(latent_dim)),
            default=default,
            key=f"latent-dims-{run.name}",
            help="For a VAE the default is the dimensions with the most KL (the used ones).",
        )
        if dims:
            picture = to_pil(traversal(run, tuple(dims), selection.seed), nrow=TRAVERSAL_STEPS, scale=selection.scale)
            st.image(picture, caption=f"rows: dimensions {dims}; columns: −3 … +3, other dimensions fixed")
        if kl is not None:
            st.plotly_chart(kl_figure(run, kl), key=f"latent-kl-{run.name}")
    with st.expander("How to read these pictures"):
        st.markdown(EXPLANATION)
