"""Tab 3 — Latent space: a 2-D map of the encoded test split, traversals along latent dimensions, KL per dimension."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch

from evaluation import diagnostics

from . import export
from .images import png_bytes, to_pil
from .state import Run, Selection, class_kwargs, fixed_class, per_run_cache, run_dataset, sections, torch_generator

MAP_POINTS = 1000
THUMBNAILS = 80
TRAVERSAL_STEPS = 9
TRAVERSAL_RANGE = 3.0
PROJECTIONS = ("PCA", "t-SNE")  # the first is the default
SHOW_THUMBNAILS = True
TRAVERSALS = "Traversals and KL per dimension"  # the tab's second part

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
    codes = run.model().encode(images, **class_kwargs(run, labels)).cpu().numpy()
    return codes, images, (labels.numpy() if split.labels is not None else None)


def principal_components(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The codes on their first two principal axes, and the share of the variance each axis holds. An SVD of
    the centred codes (numpy), not scikit-learn's PCA: importing scikit-learn costs seconds, a map milliseconds.
    Each axis points so that its largest loading is positive: the map's orientation does not depend on LAPACK."""
    centred = codes - codes.mean(0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:2] * np.sign(axes[:2][np.arange(2), np.abs(axes[:2]).argmax(1)])[:, None]
    return centred @ axes.T, singular[:2] ** 2 / (singular**2).sum()


@st.cache_data(max_entries=16, show_spinner="Projecting the codes to 2-D…")
def project(codes: np.ndarray, method: str) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D coordinates and the names of their axes (PCA axes say how much variance they hold)."""
    if codes.shape[1] <= 2:
        return np.pad(codes, ((0, 0), (0, 2 - codes.shape[1]))), ("z0", "z1")
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        xy = TSNE(2, init="pca", random_state=0, perplexity=min(30, len(codes) - 1)).fit_transform(codes)
        return xy, ("t-SNE 1", "t-SNE 2")
    xy, shares = principal_components(codes)
    return xy, (f"PC1 ({shares[0]:.0%} of the variance)", f"PC2 ({shares[1]:.0%} of the variance)")


def _data_uri(picture) -> str:
    """A PIL picture as a PNG data URI (plotly draws one <image> for it, cheap for the browser)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(picture)).decode()


@per_run_cache
def latent_map(run: Run, method: str, thumbnails: bool) -> go.Figure:
    """Scatter of the 2-D codes coloured by class; optional thumbnails of some images drawn at their points."""
    codes, images, labels = encoded_test_split(run)
    xy, (x_name, y_name) = project(codes, method)
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
        labels={"x": x_name, "y": y_name},
        height=520,
        category_orders={"class": list(names) if names else None},
    )
    figure.update_traces(marker={"size": 5, "opacity": 0.8})
    if thumbnails:
        span = float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-6)) * 0.05
        shown = np.linspace(0, len(xy) - 1, min(THUMBNAILS, len(xy))).astype(int)
        figure.layout.images = [  # set at once: one add_layout_image call per picture is 100x slower
            dict(
                source=_data_uri(to_pil(images[i][None], nrow=1)),
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
    kw = fixed_class(run, len(dims) * TRAVERSAL_STEPS, seed)
    return model.decode(codes.view(-1, base.numel()).to(model.device), **kw).clamp(0, 1).cpu()


@per_run_cache
def activity(run: Run) -> dict:
    """KL, posterior-mean variance and the active flag of each latent dimension over the test split."""
    split = run_dataset(run).test
    images, labels = split[list(range(min(len(split), MAP_POINTS)))]
    return diagnostics.latent_activity(run.model(), images, class_kwargs(run, labels).get("labels"))


def kl_figure(run: Run, usage: dict) -> go.Figure:
    """KL per dimension, coloured by the one active-unit rule the metric rows use."""
    kl, active = np.asarray(usage["kl_per_dim"]), usage["active"]
    figure = go.Figure()
    for flag, name, colour in ((True, "active", "#1f77b4"), (False, "inactive", "#bbbbbb")):
        dims = [i for i, a in enumerate(active) if a == flag]
        figure.add_trace(go.Bar(x=dims, y=kl[dims], name=f"{name} ({len(dims)})", marker_color=colour))
    figure.update_layout(
        height=380,
        title=f"{run.label}<br>KL per latent dimension — {usage['active_units']} active units",
        xaxis={"title": "latent dimension", "tickmode": "linear", "dtick": 1},
        yaxis_title="KL (nats per image)",
        legend={"orientation": "h", "y": -0.3},
        margin={"t": 100, "b": 90},
    )
    figure.add_annotation(
        text=f"active = Var over images of the posterior mean > {usage['threshold']:g}",
        xref="paper",
        yref="paper",
        x=0,
        y=1.06,
        showarrow=False,
        font={"size": 11},
    )
    return figure


def traversal_figure(run: Run, images: torch.Tensor, dims: list[int]) -> go.Figure:
    """The traversal grid with labelled rows (dimensions) and columns (values of the traversed dimension)."""
    cell = images.shape[-1] + 2  # make_grid's padding
    values = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
    # one PNG, not a pixel array: the browser draws an array pixel by pixel (seconds per figure on a laptop CPU)
    source = _data_uri(to_pil(images, nrow=TRAVERSAL_STEPS, scale=1))
    figure = go.Figure(go.Image(source=source, hoverinfo="skip"))
    figure.update_xaxes(
        tickvals=[cell * (i + 0.5) for i in range(TRAVERSAL_STEPS)],
        ticktext=[f"{v:+.1f}" for v in values],
        title="value of the traversed dimension",
    )
    figure.update_yaxes(
        tickvals=[cell * (i + 0.5) for i in range(len(dims))], ticktext=[f"z{d}" for d in dims], title="dimension"
    )
    figure.update_layout(
        title=f"{run.label}: latent traversals<br><sup>other dimensions fixed at one prior draw</sup>",
        width=140 + 56 * TRAVERSAL_STEPS,
        height=140 + 56 * len(dims),
        margin={"l": 70, "r": 10, "t": 60, "b": 60},
    )
    return figure


def render_maps(selection: Selection, method: str, thumbnails: bool) -> None:
    runs = list(selection.runs)
    for start in range(0, len(runs), 2):
        for column, run in zip(st.columns(2), runs[start : start + 2]):
            with column:
                if run.capabilities.encoder:
                    export.chart(
                        latent_map(run, method, thumbnails), f"{run.name}-latent-map-{method}", f"latent-map-{run.name}"
                    )
                else:
                    st.info(
                        f"**{run.label}** has no map: it has no encoder (a GAN maps z → image only), so the "
                        "test images have no codes to place. Its latent space is still explored by the "
                        "traversals below and by interpolation."
                    )


def warm(selection: Selection) -> None:
    """The default view's slow parts (encoding, the projection and its first import, KL per dimension)."""
    for run in selection.runs:
        if run.capabilities.encoder:
            latent_map(run, PROJECTIONS[0], SHOW_THUMBNAILS)
        if run.capabilities.posterior:
            activity(run)


def render_map_view(selection: Selection) -> None:
    c1, c2 = st.columns(2)
    method = c1.radio(
        "Projection",
        PROJECTIONS,
        key="latent_method",
        horizontal=True,
        help="t-SNE keeps neighbourhoods but distorts distances and takes a few seconds.",
    )
    thumbnails = c2.checkbox("Draw some images on the map", value=SHOW_THUMBNAILS, key="latent_thumbs")
    render_maps(selection, method, thumbnails)


def render_traversals(selection: Selection) -> None:
    for run in selection.runs:
        latent_dim = run.info["model_config"]["latent_dim"]
        usage = activity(run) if run.capabilities.posterior else None
        ranked = list(np.argsort(-np.asarray(usage["kl_per_dim"]))) if usage else list(range(latent_dim))
        default = sorted(int(d) for d in ranked[: min(6, latent_dim)])
        dims = st.multiselect(
            f"Dimensions to traverse — {run.label}",
            list(range(latent_dim)),
            default=default,
            key=f"latent-dims-{run.name}",
            help="For a VAE the default is the dimensions with the most KL (the used ones).",
        )
        left, right = st.columns(2)
        if dims:
            with left:
                figure = traversal_figure(run, traversal(run, tuple(dims), selection.seed), dims)
                export.chart(figure, f"{run.name}-traversals-seed{selection.seed}", f"latent-trav-{run.name}")
        if usage is not None:
            with right:
                export.chart(kl_figure(run, usage), f"{run.name}-kl-per-dimension", f"latent-kl-{run.name}")


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    sections(
        {
            "Maps of the codes": lambda: render_map_view(selection),
            TRAVERSALS: lambda: render_traversals(selection),
        },
        "latent_part",
    )
    with st.expander("How to read these pictures"):
        st.markdown(EXPLANATION)
