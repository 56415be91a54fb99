"""Tab — Sanity & copying: the yardstick calibrated in front of the student (every metric on real images and on
corrupted copies of them), and each run's samples beside their nearest training images (memorization)."""

from __future__ import annotations

import json

import streamlit as st

from evaluation import bundle, pictures
from evaluation.bundle import SANITY_N_CHOICES
from evaluation.runs import EXTRACTORS_FOLDER
from generators.checkpoints import atomic_write_bytes

from . import export
from .state import Selection, checkpoints_dir

EXPLANATION = """
Each row scores a set of **real** images as if a model had drawn them. The held-out test images are the best
any model can do; blurring and noise should raise FID (and usually lower precision — on sprites, whose blurred
shapes stay inside the real ones' neighbourhoods, it does not); half the classes, one class and ten
images repeated should lower recall and coverage (and the class count); the training images themselves score
perfectly on every distribution metric — which is why the **copy rate** exists: it is the share of samples
closer to a training image than 95 % of held-out real images are (≈ 0.05 for a model that does not copy, → 1
for one that hands back its training set). KID is an unbiased estimate, so a set as close to the reference as the
held-out images can score slightly below 0.
"""

ROW_PIXELS = 35  # the height of one row of st.dataframe


def sanity_path(dataset: str, n: int):
    return bundle.sanity_path(checkpoints_dir(), dataset, n)


def stored_sanity(dataset: str, n: int) -> list[dict] | None:
    """The panel computed before (kept beside the runs), or None."""
    return bundle.stored_sanity(checkpoints_dir(), dataset, n)


def compute_sanity(dataset: str, n: int) -> list[dict]:
    from evaluation.sanity import sanity_panel

    bar = st.progress(0.0, text="Scoring corrupted copies of real images…")
    rows = sanity_panel(
        dataset,
        n=n,
        cache_dir=checkpoints_dir() / EXTRACTORS_FOLDER,
        progress=lambda f, text: bar.progress(min(f, 1.0), text=f"case: {text}"),
    )
    path = sanity_path(dataset, n)
    path.parent.mkdir(exist_ok=True)
    atomic_write_bytes(path, json.dumps(rows, indent=1).encode())
    bar.progress(1.0, text="Done.")
    return rows


def gallery_figure(selection: Selection):
    return pictures.gallery_figure(selection.runs, selection.seed, checkpoints_dir() / EXTRACTORS_FOLDER)


def render_sanity(dataset: str) -> None:
    from evaluation.report import sanity_keys, sanity_sample_sizes, summary_frame

    c1, c2 = st.columns([1, 3])
    n = c1.selectbox("Reference size n", SANITY_N_CHOICES, index=0, key="sanity_n")
    rows = stored_sanity(dataset, n)
    if c2.button(
        ("Recompute" if rows else "Compute") + f" the sanity panel on {dataset} (n = {n})",
        key="sanity_compute",
        help="Scores sets of real or corrupted images (and, on a data set with factors, known-answer codes): "
        "about 10 s at n = 1 000 on mnist5k on a 2-core CPU, more at larger n and on a data set with factors.",
    ):
        rows = compute_sanity(dataset, n)
    if not rows:
        st.info("The sanity panel has not been computed for this dataset and n yet.")
        return
    # tall enough for every row: the known-answer codes of a data set with factors come last
    table_height = ROW_PIXELS * (len(rows) + 1) + 3
    st.dataframe(
        summary_frame(rows, sanity_keys(rows)),
        hide_index=True,
        height=table_height,
        key="sanity-table",
        column_config={"case": st.column_config.Column(pinned=True)},  # kept in view when the table scrolls sideways
    )
    st.caption(sanity_sample_sizes(rows))
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
