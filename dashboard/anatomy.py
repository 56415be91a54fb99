"""Tab — VAE anatomy: the seed article's mechanism on one image. Encoder → μ and σ per latent dimension →
k reparameterised draws z = μ + σ·ε → their decodes → this image's reconstruction and KL terms, and how they
change with β across the selected VAE runs. An autoencoder shows its single code beside it, with no σ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from evaluation import diagnostics

from . import export
from .images import to_pil
from .state import Run, Selection, class_kwargs, per_run_cache, run_dataset, test_images, torch_generator

DRAWS = 8
RUNS_PER_ROW = 3
BAR_COLOURS = {"μ ± σ": "#1f77b4", "autoencoder code": "#7f7f7f"}
SIGMA_MARKER = {"symbol": "diamond", "size": 9, "color": "#ff7f0e"}

EXPLANATION = """
The encoder does not give one code but a Gaussian **q(z|x) = N(μ, σ²)** per latent dimension. Training draws
**z = μ + σ·ε** with ε ~ N(0, 1) (the *reparameterisation trick*: the randomness sits in ε, so gradients flow
through μ and σ), decodes it, and pays two terms: the **reconstruction term** E_q[−log p(x|z)] — how badly the
draws' decodes explain this image — and the **KL term** KL(q(z|x) ‖ N(0, I)) — how far this image's Gaussian is
from the prior. The loss is reconstruction + β·KL. Dimensions with σ ≈ 1 and μ ≈ 0 carry no information about the
image (their KL is ≈ 0); a larger β pushes more of them there, so the draws vary more and the decodes blur. A plain
autoencoder has only μ: a single point per image, nothing that makes its neighbourhood decode sensibly.
"""


@per_run_cache
def run_anatomy(run: Run, index: int, seed: int) -> dict:
    image, labels = test_images(run, (index,))
    label = class_kwargs(run, labels).get("labels")
    return diagnostics.anatomy(run.model(), image, DRAWS, torch_generator(seed), None if label is None else label[0])


def codes_figure(runs: list[Run], results: list[dict], index: int) -> go.Figure:
    """μ per latent dimension with ±σ bars and σ as diamonds, one panel per run (an autoencoder's panel shows
    its single code): one figure, so a report shows what β does to the same image at a glance."""
    figure = make_subplots(
        rows=len(runs),
        cols=1,
        subplot_titles=[
            f"{run.label}: " + ("μ with ±σ per dimension" if result["sigma"] is not None else "its code (no σ)")
            for run, result in zip(runs, results)
        ],
        vertical_spacing=min(0.12, 0.3 / len(runs)),
    )
    for i, result in enumerate(results):
        mu, sigma = result["mu"].numpy(), result["sigma"]
        dims = [f"z{d}" for d in range(len(mu))]
        error = None if sigma is None else {"type": "data", "array": sigma.numpy(), "visible": True}
        name = "μ ± σ" if error else "autoencoder code"
        bars = go.Bar(x=dims, y=mu, error_y=error, name=name, legendgroup=name, marker_color=BAR_COLOURS[name])
        figure.add_trace(bars, i + 1, 1)
        if sigma is not None:
            diamonds = go.Scatter(
                x=dims, y=sigma.numpy(), mode="markers", name="σ", legendgroup="σ", marker=SIGMA_MARKER
            )
            figure.add_trace(diamonds, i + 1, 1)
        figure.update_yaxes(title_text="value", row=i + 1, col=1)
    figure.update_xaxes(title_text="latent dimension", row=len(runs), col=1)
    export.one_legend_entry_per_name(figure)
    figure.update_layout(
        height=120 + 230 * len(runs),
        title=f"Test image #{index}: each run's code",
        legend={"orientation": "h", "y": 1.0 + 40 / (230 * len(runs)), "yanchor": "bottom", "x": 1, "xanchor": "right"},
        margin={"t": 120},
    )
    return figure


def warm(selection: Selection) -> None:
    """The default view's computations: each encoder run's anatomy of the image the page opens on."""
    for run in selection.runs:
        if run.capabilities.encoder:
            run_anatomy(run, selection.seed % len(run_dataset(run).test), selection.seed)


def terms_table(runs: list[Run], index: int, seed: int) -> pd.DataFrame:
    rows = []
    for run in sorted(runs, key=lambda r: r.beta if r.beta is not None else 1.0):
        result = run_anatomy(run, index, seed)
        beta = run.beta if run.beta is not None else 1.0
        rows.append(
            {
                "run": run.name,
                "β": beta,
                "reconstruction term (nats)": result["recon_nats"],
                "KL term (nats)": result["kl_nats"],
                "loss = recon + β·KL (nats)": result["recon_nats"] + beta * result["kl_nats"],
            }
        )
    return pd.DataFrame(rows)


def render_decodes(run: Run, result: dict, seed: int) -> None:
    """One run's decodes of this image: from μ, and from k draws around it (a VAE), with its two loss terms."""
    st.markdown(f"**{run.label}**")
    caption = "decoded from μ" if result["sigma"] is not None else "decoded from its code"
    st.image(to_pil(result["reconstruction"], nrow=1, scale=4), caption=caption, output_format="PNG")
    if result["decodes"] is None:
        st.caption("An autoencoder has one code per image and no σ: nothing to draw around it.")
        return
    st.image(
        to_pil(result["decodes"], nrow=DRAWS // 2, scale=3),
        caption=f"{DRAWS} draws z = μ + σ·ε, decoded (seed {seed})",
        output_format="PNG",
    )
    st.markdown(f"Reconstruction term **{result['recon_nats']:.1f}** nats · KL term **{result['kl_nats']:.2f}** nats")


def render(selection: Selection) -> None:
    encoders = [run for run in selection.runs if run.capabilities.encoder]
    if not encoders:
        st.info(
            "The anatomy view needs a model with an encoder (a VAE, or an autoencoder for contrast); "
            "select one in the sidebar."
        )
        return
    size = len(run_dataset(encoders[0]).test)
    c1, c2 = st.columns([1, 3])
    index = int(
        c1.number_input(
            "Test image",
            0,
            size - 1,
            selection.seed % size,
            key="anatomy_image",
            help="Which image of the test split to take apart.",
        )
    )
    image, labels = test_images(encoders[0], (index,))
    label = "" if labels is None else f" (class {encoders[0].info.get('class_names', [])[int(labels[0])]})"
    c1.image(to_pil(image, nrow=1, scale=6), caption=f"test image #{index}{label}", output_format="PNG")
    c2.markdown(EXPLANATION)
    results = [run_anatomy(run, index, selection.seed) for run in encoders]
    pairs = list(zip(encoders, results))
    for start in range(0, len(pairs), RUNS_PER_ROW):
        for column, (run, result) in zip(st.columns(RUNS_PER_ROW), pairs[start : start + RUNS_PER_ROW]):
            with column:
                render_decodes(run, result, selection.seed)
    export.chart(codes_figure(encoders, results, index), f"anatomy-codes-image{index}", "anatomy-codes")
    posterior_runs = [run for run in encoders if run.capabilities.posterior]
    if len(posterior_runs) > 1:
        st.markdown("**This image's terms across the selected VAE runs** (sorted by β)")
        table = terms_table(posterior_runs, index, selection.seed)
        st.table(table.style.format({c: "{:.2f}" for c in table.columns[1:]}), hide_index=True)
        if not np.isfinite(table.iloc[:, 2:].to_numpy(dtype=float)).all():
            st.warning("Some terms are not finite: the run's weights may have diverged.")
