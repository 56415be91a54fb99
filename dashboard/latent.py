"""Tab 3 — Latent space: a 2-D map of the encoded test split, traversals along latent dimensions, KL per dimension."""

from __future__ import annotations

import base64

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from evaluation import diagnostics, disentanglement

from . import export
from .codes import MAP_POINTS, encoded_test_split, prior_scale_note, trained_classifier
from .images import png_bytes, to_pil
from .state import (
    Run,
    Selection,
    class_kwargs,
    fixed_class,
    per_run_cache,
    run_dataset,
    runs_cache,
    sections,
    torch_generator,
)

MAP_COLUMNS = 3
THUMBNAILS = 40  # per map
TRAVERSAL_STEPS = 9
TRAVERSAL_RANGE = 3.0
DECODED_DRAWS = 8  # prior draws a traversal label's decoded side is averaged over
PROJECTIONS = ("PCA", "t-SNE")  # the first is the default
SHOW_THUMBNAILS = True
TRAVERSALS = "Traversals and KL per dimension"  # the tab's second part

EXPLANATION = """
Each point is one test image, placed by its latent code (reduced to 2-D). The VAE's KL term pulls all codes
towards one N(0, I) blob, so classes touch and the space between them decodes to something sensible; nothing
pulls the autoencoder's codes together (on digits they form separated islands with empty sea in between). A
**traversal** changes one latent dimension from −3 to +3 while keeping the others fixed: in a VAE a few dimensions
carry meaning (on digits: stroke width, slant, digit identity) and the dimensions whose KL is ≈ 0 do nothing —
the encoder switched them off ("posterior collapse" of that dimension). A larger β switches off more of them.

On a data set whose generative factors are known (`sprites`: shape, scale, orientation, x and y position), the
**factor map** measures what each dimension holds: the mutual information between the dimension (binned as for
MIG) and each factor, divided by the factor's entropy — 0 = the dimension says nothing about the factor, 1 = it
determines it. A disentangled code is one bright cell per row and per column. On 2 000 images the plug-in
estimate reads up to about 0.06 for a dimension unrelated to a factor (most for the 40 orientations and the 32
positions), not 0: the map's subtitle gives this chance level, measured by pairing the codes with other images'
factors. Each traversal row is labelled by the factor its dimension holds most beyond chance ("z5 = x (0.24)"),
"no single factor" when no cell is 0.05 above chance, and "switched off" for a VAE dimension the KL chart calls
inactive (its posterior mean varies by less than 0.01 over the images, the active-unit rule of the metric rows):
its posterior mean can still follow a factor (0.15 for scale in a β = 4 run here — the bins stretch
over whatever small range it has), but that movement is drowned in the posterior's noise and the decoder ignores
it, so its row of pictures does not change (its decoded side reads no change). After the '·', what the decoded
row moves, as the factor extractor reads the pictures, averaged over the traversals around eight prior draws (see
the caption under the traversals). Orientation reads low
for every dimension: a square turned a quarter, or an ellipse turned half, is the same image, so a dimension that
turns shapes holds little MI with the angle.
"""


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
def map_panel(run: Run, method: str, thumbnails: bool) -> dict:
    """One run's map: 2-D codes, axis names, class names and (optionally) thumbnails as (PNG data URI, x, y)."""
    codes, images, labels = encoded_test_split(run)
    xy, axes = project(codes, method)
    names = run.info.get("class_names")
    classes = [names[i] if names else str(i) for i in labels] if labels is not None else ["?"] * len(xy)
    shown = np.linspace(0, len(xy) - 1, min(THUMBNAILS, len(xy))).astype(int) if thumbnails else []
    pictures = [(_data_uri(to_pil(images[i][None], nrow=1)), float(xy[i, 0]), float(xy[i, 1])) for i in shown]
    span = float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-6)) * 0.06
    return {"xy": xy, "axes": axes, "classes": np.asarray(classes), "order": names, "pictures": pictures, "span": span}


@runs_cache
def maps_figure(runs: tuple[Run, ...], method: str, thumbnails: bool) -> go.Figure:
    """The encoded test splits side by side, one panel per run, points coloured by class with one shared legend
    (clicking a class hides it in every panel); optional thumbnails of some images drawn at their points. One
    figure rather than one per run: a report gets the comparison in one picture, and the browser draws it sooner."""
    panels = [map_panel(run, method, thumbnails) for run in runs]
    columns = min(len(runs), MAP_COLUMNS)
    rows = -(-len(runs) // columns)
    figure = make_subplots(
        rows, columns, subplot_titles=[run.label for run in runs], horizontal_spacing=0.07, vertical_spacing=0.12
    )
    named = list(next((panel["order"] for panel in panels if panel["order"]), None) or [])
    found = sorted({str(c) for panel in panels for c in panel["classes"]}, key=_natural)
    classes = named + [c for c in found if c not in named]  # runs on other data keep their points
    palette = px.colors.qualitative.Plotly if len(classes) <= 10 else px.colors.qualitative.Alphabet
    pictures = []
    for i, (run, panel) in enumerate(zip(runs, panels)):
        row, col = i // columns + 1, i % columns + 1
        for k, name in enumerate(classes):
            chosen = np.flatnonzero(panel["classes"] == name)
            if not len(chosen):
                continue
            figure.add_trace(
                go.Scatter(
                    x=panel["xy"][chosen, 0],
                    y=panel["xy"][chosen, 1],
                    mode="markers",
                    marker={"size": 5, "opacity": 0.8, "color": palette[k % len(palette)]},
                    name=name,
                    legendgroup=name,
                    customdata=chosen,
                    hovertemplate=f"class {name}<br>test image #%{{customdata}}<extra>{run.name}</extra>",
                ),
                row,
                col,
            )
        figure.update_xaxes(title_text=panel["axes"][0], row=row, col=col)
        figure.update_yaxes(title_text=panel["axes"][1], row=row, col=col)
        axis, size = ("" if i == 0 else str(i + 1)), panel["span"]
        placed = {"xref": f"x{axis}", "yref": f"y{axis}", "sizex": size, "sizey": size, "layer": "above"}
        centred = {"xanchor": "center", "yanchor": "middle"}
        pictures += [dict(source=uri, x=x, y=y, **placed, **centred) for uri, x, y in panel["pictures"]]
    export.one_legend_entry_per_name(figure)  # classes share colour and legend group across panels
    figure.layout.images = pictures  # set at once: one add_layout_image call per picture is 100x slower
    figure.update_layout(
        title=f"Encoded test split ({method}), one panel per run",
        height=110 + 420 * rows,
        legend={"title": "class", "itemsizing": "constant"},
        margin={"t": 90, "b": 60},
    )
    return figure


def _natural(name: str):
    return (0, int(name)) if name.isdigit() else (1, name)


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


def traversal_figure(run: Run, images: torch.Tensor, dims: list[int], held: list[str] | None = None) -> go.Figure:
    """The traversal grid with labelled rows (dimensions, and where the factors are known ``held``: one label per
    traversed dimension, see ``row_labels``) and columns (values of the traversed dimension)."""
    cell = images.shape[-1] + 2  # make_grid's padding
    values = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
    # one PNG, not a pixel array: the browser draws an array pixel by pixel (seconds per figure on a laptop CPU)
    source = _data_uri(to_pil(images, nrow=TRAVERSAL_STEPS, scale=1))
    figure = go.Figure(go.Image(source=source, hoverinfo="skip"))
    figure.update_xaxes(
        tickvals=[cell * (i + 0.5) for i in range(TRAVERSAL_STEPS)],
        ticktext=["0" if v == 0 else f"{v:+g}" for v in values],  # the exact values (±0.75, not ±0.8)
        title="value of the traversed dimension",
    )
    figure.update_yaxes(
        tickvals=[cell * (i + 0.5) for i in range(len(dims))],
        ticktext=[f"z{d} = {label}" for d, label in zip(dims, held)] if held else [f"z{d}" for d in dims],
        title="dimension = factor its code holds most" if held else "dimension",  # fits beside six rows
    )
    figure.update_layout(
        title=f"{run.label}: latent traversals<br><sup>other dimensions fixed at one prior draw</sup>",
        width=(430 if held else 140) + 56 * TRAVERSAL_STEPS,
        height=140 + 56 * len(dims),
        margin={"l": 360 if held else 70, "r": 10, "t": 60, "b": 60},
    )
    return figure


LABELS_VERSUS_PICTURES = (
    "A row's label has two sides. Before the '·': what the codes of 2 000 real images say (the factor the "
    "dimension's values share most information with, and that normalised MI). After 'decoded': what the decoder does "
    "along the row, as the lab's factor extractor reads the pictures, averaged over the rows around eight prior "
    "draws (the figure shows one) — the factor on a line "
    "(size, position) whose value moves most, and by what share of its range; turning and reshaping have no such "
    "distance, so look at the pictures for those. In a disentangled code both sides name the same factor. Where they "
    "differ, or a row also turns or reshapes the sprite, the code is entangled — what a low MIG measures (below "
    "0.07 for every committed sprites run) — and an MI of 0.1–0.3 says 'mostly', not 'only'."
)


def row_labels(run: Run, dims: list[int], held: list[str]) -> list[str]:
    """Each traversed dimension's encoder label (``held``) and, once the factor extractor exists, what its decoded
    row moves on average over ``DECODED_DRAWS`` prior draws: "x (0.24) · decoded: y (0.35)"."""
    code_side = [held[d] for d in dims]
    decoded = decoded_sides(run, tuple(dims))
    if decoded is None:
        return code_side
    return [f"{code} · decoded: {moved}" for code, moved in zip(code_side, decoded)]


@per_run_cache
def decoded_sides(run: Run, dims: tuple[int, ...]) -> list[str] | None:
    """What each dimension's traversal moves, as the factor extractor reads the pictures, averaged over the
    traversals around ``DECODED_DRAWS`` fixed prior draws: around one draw it depends on that draw (a row that
    shrinks the sprite around one can move it sideways around another). None without an extractor or factors on
    a line."""
    reader, factors = trained_classifier(run), run_dataset(run).factors
    if reader is None or not any(factors.ordered):
        return None
    shares = []
    for seed in range(DECODED_DRAWS):
        images = traversal(run, dims, seed)
        rows = images.view(len(dims), TRAVERSAL_STEPS, *images.shape[1:])
        shares.append(disentanglement.decoded_shares(reader, rows, factors))
    return disentanglement.decoded_moves(np.mean(shares, 0), factors)


def traversal_labels(found: dict | None, usage: dict | None) -> list[str] | None:
    """Each dimension's factor (see ``disentanglement.dimension_labels``), "switched off" where a VAE's dimension is
    inactive by the KL chart's rule (the metric rows' active units); None when the data set's factors are not
    known."""
    if found is None:
        return None
    switched_off = ~np.asarray(usage["active"], dtype=bool) if usage else None
    return disentanglement.dimension_labels(found["nmi"], found["names"], found["chance"], switched_off)


@per_run_cache
def factor_map(run: Run) -> dict | None:
    """Normalised MI of each latent dimension with each known factor of the run's data set (None when its
    factors are not known, e.g. digits)."""
    data = run_dataset(run)
    return None if data.factors is None else disentanglement.factor_map(run.model(), data)


def factor_map_figure(run: Run, found: dict) -> go.Figure:
    """Dimensions × factors heatmap of the normalised mutual information, each cell written out."""
    nmi = found["nmi"]
    figure = go.Figure(
        go.Heatmap(
            z=nmi,
            x=list(found["names"]),
            y=[f"z{j}" for j in range(len(nmi))],
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=np.round(nmi, 2),
            texttemplate="%{text:.2f}",
            colorbar={"title": "MI / H(factor)"},
            hovertemplate="%{y} and %{x}: %{z:.3f}<extra></extra>",
        )
    )
    figure.update_xaxes(title="known factor", side="top")
    figure.update_yaxes(title="latent dimension", autorange="reversed")
    figure.update_layout(
        title=f"{run.label}: what each dimension holds<br><sup>mutual information / the factor's entropy, "
        f"{disentanglement.FACTOR_MAP_IMAGES} test images (chance: up to {found['chance'].max():.2f}); "
        f"codes: {found['codes_method']}</sup>",
        height=200 + 34 * len(nmi),
        margin={"t": 160},
    )
    return figure


def render_maps(selection: Selection, method: str, thumbnails: bool) -> None:
    encoders = tuple(run for run in selection.runs if run.capabilities.encoder)
    if encoders:
        export.chart(maps_figure(encoders, method, thumbnails), f"latent-maps-{method}", "latent-maps")
    for run in selection.runs:
        if not run.capabilities.encoder:
            st.info(
                f"**{run.label}** has no map: it has no encoder (a GAN maps z → image only), so the "
                "test images have no codes to place. Its latent space is still explored by the "
                "traversals and by interpolation."
            )


def warm(selection: Selection) -> None:
    """The default view's slow parts (encoding, the projection and its first import, KL per dimension)."""
    encoders = tuple(run for run in selection.runs if run.capabilities.encoder)
    if encoders:
        maps_figure(encoders, PROJECTIONS[0], SHOW_THUMBNAILS)
    for run in selection.runs:
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
        found = factor_map(run)
        ranked = list(np.argsort(-np.asarray(usage["kl_per_dim"]))) if usage else list(range(latent_dim))
        default = sorted(int(d) for d in ranked[: min(6, latent_dim)])
        dims = st.multiselect(
            f"Dimensions to traverse — {run.label}",
            list(range(latent_dim)),
            default=default,
            key=f"latent-dims-{run.name}",
            help="For a VAE the default is the dimensions with the most KL (the used ones).",
        )
        # rows with two-sided labels (known factors) need the page's width; the KL bars then go below
        left, right = (st.container(), st.container()) if found is not None else st.columns(2)
        if dims:
            with left:
                held = traversal_labels(found, usage)
                images = traversal(run, tuple(dims), selection.seed)
                figure = traversal_figure(run, images, dims, row_labels(run, dims, held) if held else None)
                export.chart(figure, f"{run.name}-traversals-seed{selection.seed}", f"latent-trav-{run.name}")
                note = prior_scale_note(run, f"A traversal from −{TRAVERSAL_RANGE:g} to +{TRAVERSAL_RANGE:g}")
                if note:
                    st.caption(note)
                if held:
                    st.caption(LABELS_VERSUS_PICTURES)
        if usage is not None:
            with right:
                export.chart(kl_figure(run, usage), f"{run.name}-kl-per-dimension", f"latent-kl-{run.name}")
        if found is not None:
            export.chart(factor_map_figure(run, found), f"{run.name}-factor-map", f"latent-factors-{run.name}")


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
