"""Tab — Sanity & copying: the yardstick calibrated in front of the student (every metric on real images and on
corrupted copies of them), and each run's samples beside their nearest training images (memorization)."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st
import torch
from torchvision.utils import make_grid

from generators.checkpoints import atomic_write_bytes

from . import export
from .state import Run, Selection, checkpoints_dir, per_run_cache

SANITY_N_CHOICES = (1000, 2000, 5000)
GALLERY_SAMPLES = 8
GALLERY_NEIGHBOURS = 3
SANITY_FILE_BYTES = 4_000_000

EXPLANATION = """
Each row scores a set of **real** images as if a model had drawn them. The held-out test images are the best
any model can do; blurring and noise should raise FID and lower precision; half the classes, one class and ten
images repeated should lower recall and coverage (and the class count); the training images themselves score
perfectly on every distribution metric — which is why the **copy rate** exists: it is the share of samples
closer to a training image than 95 % of held-out real images are (≈ 0.05 for a model that does not copy, → 1
for one that hands back its training set).
"""


def sanity_path(dataset: str, n: int):
    return checkpoints_dir() / "_sanity" / f"{dataset}-n{n}.json"


def stored_sanity(dataset: str, n: int) -> list[dict] | None:
    """The panel computed before (kept beside the runs), or None."""
    from generators.checkpoints import read_regular_file
    from generators.errors import UserError

    path = sanity_path(dataset, n)
    if not path.exists():
        return None
    try:
        rows = json.loads(read_regular_file(path, SANITY_FILE_BYTES))
    except (UserError, ValueError):
        return None
    return rows if isinstance(rows, list) and all(isinstance(r, dict) for r in rows) else None


def compute_sanity(dataset: str, n: int) -> list[dict]:
    from evaluation.sanity import sanity_panel

    bar = st.progress(0.0, text="Scoring corrupted copies of real images…")
    rows = sanity_panel(
        dataset,
        n=n,
        cache_dir=checkpoints_dir() / "_extractors",
        progress=lambda f, text: bar.progress(min(f, 1.0), text=f"case: {text}"),
    )
    path = sanity_path(dataset, n)
    path.parent.mkdir(exist_ok=True)
    atomic_write_bytes(path, json.dumps(rows, indent=1).encode())
    bar.progress(1.0, text="Done.")
    return rows


@per_run_cache
def gallery(run: Run, seed: int) -> tuple[torch.Tensor, list[dict], torch.Tensor]:
    """Samples, their nearest training images' rows, and the training images they point into."""
    from evaluation.memorization import run_gallery

    images, train, rows = run_gallery(
        run.run_dir,
        samples=GALLERY_SAMPLES,
        k=GALLERY_NEIGHBOURS,
        seed=seed,
        cache_dir=checkpoints_dir() / "_extractors",
    )
    return images, rows, train


def gallery_array(run: Run, seed: int) -> np.ndarray:
    """Rows = samples; columns = the sample, then its nearest training images (nearest first)."""
    images, rows, train = gallery(run, seed)
    tiles = []
    for image, row in zip(images, rows):
        tiles.append(image)
        tiles += [train[i].float() / 255 for i in row["indices"]]
    grid = make_grid(torch.stack(tiles), nrow=1 + GALLERY_NEIGHBOURS, padding=2, pad_value=1.0)
    array = grid.mul(255).round().clamp(0, 255).to(torch.uint8)
    return array[0].numpy() if images.shape[1] == 1 else array.permute(1, 2, 0).numpy()


def gallery_figure(selection: Selection):
    panels = [(run.label, gallery_array(run, selection.seed)) for run in selection.runs]
    return export.image_panels(
        panels,
        f"Samples (left column) beside their {GALLERY_NEIGHBOURS} nearest training "
        f"images (feature space), seed {selection.seed}",
        columns=min(len(panels), 4),
    )


def render_sanity(dataset: str) -> None:
    from evaluation.report import SANITY_KEYS, summary_frame

    c1, c2 = st.columns([1, 3])
    n = c1.selectbox("Reference size n", SANITY_N_CHOICES, index=0, key="sanity_n")
    rows = stored_sanity(dataset, n)
    if c2.button(
        ("Recompute" if rows else "Compute") + f" the sanity panel on {dataset} (n = {n})",
        key="sanity_compute",
        help="Scores 9 sets of real or corrupted images: about a minute per 1 000.",
    ):
        rows = compute_sanity(dataset, n)
    if not rows:
        st.info("The sanity panel has not been computed for this dataset and n yet.")
        return
    st.dataframe(summary_frame(rows, SANITY_KEYS), hide_index=True, key="sanity-table")
    st.markdown("\n".join(f"- **{row['case']}**: {row['meaning']}" for row in rows))


def render(selection: Selection) -> None:
    if not selection.runs:
        return
    dataset = selection.runs[0].info["dataset"]
    st.subheader("Metric sanity panel")
    st.markdown(EXPLANATION)
    render_sanity(dataset)
    st.subheader("Nearest training images (memorization check)")
    st.caption(
        "Each sample (left) beside the training images closest to it in the feature space of the "
        "project's classifier. Near-identical neighbours would mean copying."
    )
    if st.toggle("Show the gallery (extracts the features of the training set once per run)", key="gallery_on"):
        export.chart(gallery_figure(selection), f"nearest-neighbours-seed{selection.seed}", "sanity-gallery")
