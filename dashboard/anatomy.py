"""Tab — VAE anatomy: the seed article's mechanism on one image. Encoder → μ and σ per latent dimension →
k reparameterised draws z = μ + σ·ε → their decodes → this image's reconstruction and KL terms, and how they
change with β across the selected VAE runs. An autoencoder shows its single code beside it, with no σ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evaluation import diagnostics

from . import export
from .images import to_pil
from .state import Run, Selection, class_kwargs, per_run_cache, run_dataset, test_images, torch_generator

DRAWS = 8

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


def code_figure(run: Run, result: dict) -> go.Figure:
    """μ per latent dimension with ±σ bars (or the autoencoder's single code)."""
    mu = result["mu"].numpy()
    dims = [f"z{i}" for i in range(len(mu))]
    error = None if result["sigma"] is None else {"type": "data", "array": result["sigma"].numpy(), "visible": True}
    figure = go.Figure(go.Bar(x=dims, y=mu, error_y=error, name="μ ± σ" if error else "code"))
    if error:
        figure.add_trace(
            go.Scatter(
                x=dims, y=result["sigma"].numpy(), mode="markers", name="σ", marker={"symbol": "diamond", "size": 9}
            )
        )
    figure.update_layout(
        height=300,
        title=f"{run.label}: " + ("μ with ±σ per dimension" if error else "its code"),
        xaxis_title="latent dimension",
        yaxis_title="value",
        legend={"orientation": "h", "y": -0.3},
        margin={"b": 80},
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
    c1.image(to_pil(image, nrow=1, scale=6), caption=f"test image #{index}{label}")
    c2.markdown(EXPLANATION)
    for run in encoders:
        result = run_anatomy(run, index, selection.seed)
        st.markdown(f"#### {run.label}")
        left, right = st.columns([3, 2])
        with left:
            export.chart(code_figure(run, result), f"{run.name}-anatomy-code-{index}", f"anatomy-code-{run.name}")
        with right:
            st.image(to_pil(result["reconstruction"], nrow=1, scale=4), caption="decoded from μ")
            if result["decodes"] is not None:
                st.image(
                    to_pil(result["decodes"], nrow=DRAWS // 2, scale=3),
                    caption=f"{DRAWS} draws z = μ + σ·ε, decoded (seed {selection.seed})",
                )
                st.markdown(
                    f"Reconstruction term **{result['recon_nats']:.1f}** nats · KL term "
                    f"**{result['kl_nats']:.2f}** nats"
                )
            else:
                st.caption("An autoencoder has one code per image and no σ: nothing to draw around it.")
    posterior_runs = [run for run in encoders if run.capabilities.posterior]
    if len(posterior_runs) > 1:
        st.markdown("**This image's terms across the selected VAE runs** (sorted by β)")
        table = terms_table(posterior_runs, index, selection.seed)
        st.dataframe(
            table,
            hide_index=True,
            key="anatomy-terms",
            column_config={c: st.column_config.NumberColumn(format="%.2f") for c in table.columns[1:]},
        )
        if not np.isfinite(table.iloc[:, 2:].to_numpy(dtype=float)).all():
            st.warning("Some terms are not finite: the run's weights may have diverged.")
