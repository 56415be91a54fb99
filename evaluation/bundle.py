"""The report zip: every figure as PNG and PDF with a caption each (figures.md), the tables (a page-width LaTeX
table, the full CSV with its columns' units, the summary in Markdown, the fairness table, the sanity panel and the
compression rows once computed), a methods paragraph, the findings and each run's sample grid — made from run
folders alone.

The dashboard's button and ``python -m evaluation report RUN… --out report.zip`` both call ``build_zip``, so the
two zips hold the same files, the same tables for the same rows and figures made by the same code. What the
tables leave out and where each fact is said once: ``evaluation.report``.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from generators.checkpoints import read_regular_file
from generators.errors import UserError

from . import findings as findings_module
from .augmentation import augmentation_figure, stored_by_run
from .charts import CURVE_POINTS, metric_figures, training_figures
from .compression import compression_figure, stored_compression
from .compression import table as compression_table
from .fairness import fairness_frame
from .figures import figure_bytes
from .pictures import (
    GALLERY_NEIGHBOURS,
    GALLERY_SAMPLES,
    GRID_SCALE,
    ONE_ROW_PER_CLASS,
    draws_count,
    gallery_figure,
    sample_grid_png,
    samples_figure,
)
from .rows import comparison_n, comparison_rows
from .runs import EXTRACTORS_FOLDER, SANITY_FOLDER, lab_folder, scan
from .sweeps import largest_sweep, setting_sweeps, sweep_figures, sweep_metric_figure

SANITY_N_CHOICES = (1000, 2000, 5000)
SANITY_FILE_BYTES = 4_000_000
DEFAULT_SEED, DEFAULT_SAMPLES = 0, 64  # the dashboard's sidebar starts with these
FIGURE_FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class ReportInputs:
    """What one report is made of: the runs compared (``evaluation.runs.Run`` records), the seed and the number
    of samples of the grids, the folder of runs they live in (its ``_extractors`` and ``_sanity``), and the runs
    the β sweep is picked from (the folder's runs)."""

    runs: tuple
    seed: int
    n_samples: int
    folder: Path
    pool: tuple

    @property
    def extractors(self) -> Path:
        return Path(self.folder) / EXTRACTORS_FOLDER

    @property
    def dataset(self) -> str | None:
        return self.runs[0].info["dataset"] if self.runs else None

    def sweep(self) -> dict:
        """β -> run of the largest β sweep among the folder's runs on the first run's dataset."""
        return largest_sweep(list(self.pool), self.dataset) if self.runs else {}

    def size_sweep(self):
        """The training-set-size sweep with the most sizes among the folder's runs on the first run's dataset."""
        found = setting_sweeps(list(self.pool), self.dataset, "train_size") if self.runs else []
        return found[0] if found and len(found[0].points) > 1 else None

    def compression(self) -> list[dict]:
        """The compression rows stored in the runs' compression.json (``compression.stored_compression``)."""
        return stored_compression(self.runs)


def report_inputs(runs, seed: int = DEFAULT_SEED, n_samples: int = DEFAULT_SAMPLES, folder=None, pool=None):
    """``ReportInputs`` with the defaults of a command line: the folder holding the first run, and its runs."""
    folder = Path(folder) if folder is not None else lab_folder(list(runs))
    if pool is None:
        names = {run.name for run in runs}
        pool = [run for run in scan(folder)[0] if run.name not in names] + list(runs)
    return ReportInputs(tuple(runs), int(seed), int(n_samples), folder, tuple(pool))


def sanity_path(folder, dataset: str, n: int) -> Path:
    return Path(folder) / SANITY_FOLDER / f"{dataset}-n{n}.json"


def stored_sanity(folder, dataset: str, n: int) -> list[dict] | None:
    """The sanity panel computed before (kept beside the runs), or None."""
    path = sanity_path(folder, dataset, n)
    if not path.exists():
        return None
    try:
        rows = json.loads(read_regular_file(path, SANITY_FILE_BYTES))
    except (UserError, ValueError):
        return None
    return rows if isinstance(rows, list) and all(isinstance(r, dict) for r in rows) else None


def sanity_panel(inputs: ReportInputs) -> tuple[list[dict] | None, int | None]:
    """The stored sanity panel of the first run's dataset at the largest n it was computed at, and that n."""
    for n in reversed(SANITY_N_CHOICES):
        if inputs.runs and (rows := stored_sanity(inputs.folder, inputs.dataset, n)):
            return rows, n
    return None, None


def report_figures(inputs: ReportInputs, rows: list[dict]) -> dict:
    """Every figure of the report by file name: metric charts, training curves, the β sweep, the labelled
    multi-model sample figure and the nearest-neighbour gallery."""
    figures = {**metric_figures(rows), **training_figures(inputs.runs)}
    if inputs.runs:
        figures.update(sweep_figures(inputs.sweep()))
        size_sweep = inputs.size_sweep()
        if size_sweep is not None and (figure := sweep_metric_figure(size_sweep, "fid")) is not None:
            figures["train_size_fid"] = figure
        figures["samples"] = samples_figure(inputs.runs, inputs.n_samples, inputs.seed, "prior")
        figures["nearest_neighbours"] = gallery_figure(inputs.runs, inputs.seed, inputs.extractors)
        augmentation = augmentation_figure(stored_by_run(inputs.runs))
        if augmentation is not None:  # computed by python -m evaluation augment or the Metrics tab
            figures["augmentation"] = augmentation
        if compression := inputs.compression():  # computed by python -m evaluation compress or the Reconstruction tab
            figures["compression"] = compression_figure(compression)
    return figures


def _per_run(counts: dict[str, int], unit: str) -> str:
    """``n = 64 {unit} per run``, or each run's own n where they differ."""
    if len(set(counts.values())) == 1:
        return f"n = {next(iter(counts.values()))} {unit} per run"
    return "n = " + ", ".join(f"{count} {unit} for {name}" for name, count in counts.items())


def _fixed_captions(inputs: ReportInputs, rows: list[dict]) -> dict[str, str]:
    """The captions of the figures that are not per run."""
    first = rows[0] if rows else {}
    n, n_real = first.get("n_fake"), first.get("n_real")
    against = f" against {n_real} real training images" if n_real else ""
    sweep = inputs.sweep()
    sweep_n = comparison_n(list(sweep.values())) if sweep else None
    betas = ", ".join(f"{beta:g}" for beta in sweep)
    draws = {run.label: draws_count(run, inputs.n_samples, ONE_ROW_PER_CLASS) for run in inputs.runs}
    fixed = {
        "fid": f"FID of each run's n = {n} prior samples{against} (log scale, lower is better), with 95 % "
        "bootstrap intervals and, as a black dash, the real-vs-real floor: the FID two halves of real data score.",
        "precision_recall": f"Precision and recall (quality and diversity) with their outlier-robust versions "
        f"density and coverage (k = 5 nearest neighbours) of n = {n} samples per run{against}, with 95 % bootstrap "
        "intervals.",
        "modes": f"The share of each run's n = {n} samples that the project's classifier puts in each class; the "
        "dashed line marks equal shares.",
        "sharpness": f"Sharpness of n = {n} samples per run: their Laplacian variance relative to real images "
        "(1 = as sharp as real digits, lower = blurrier).",
        "augmentation": "Test accuracy of the project's small classifier trained on k real images per class (dashed: "
        "real only) and on the same plus each class-conditional run's generated images, against k (log scale): mean "
        "and 95 % Student's t interval over classifier seeds (augmentation.json).",
        "samples": f"Prior samples of every run from one seed ({inputs.seed}), " + _per_run(draws, "draws") + ".",
        "beta_rate_distortion": f"Rate (KL term / ln 2, bits per image) against distortion (the reconstruction loss "
        f"term, in its own units) over the last training batches (not the test split), one point per β ({betas}) of "
        f"the β sweep's n = {len(sweep)} runs of one recipe.",
        "beta_fid": f"FID of n = {sweep_n} prior samples per run against β ({betas}) for the β sweep's "
        f"{len(sweep)} runs of one recipe, with 95 % bootstrap intervals.",
    }
    if compression := inputs.compression():
        fixed["compression"] = (
            f"Compression of the same n = {compression[0]['n']} test images: PSNR against bits per image (log scale) "
            "of each model's quantised code over the step Δ, its bits-back bound (a star: a bound, not a file), JPEG "
            "and WebP over their qualities (dotted: without shareable headers) and PNG (lossless: a vertical line); "
            "tables/compression.csv holds every point with its 95 % bootstrap intervals over images."
        )
    if (size_sweep := inputs.size_sweep()) is not None:
        fixed["train_size_fid"] = (
            f"FID of prior samples against the training-set size for {size_sweep.label}: the mean over training "
            "seeds with its 95 % t-interval (a size with one seed: that run's bootstrap interval), each seed as a dot."
        )
    curve = [point["n"] for row in rows for point in row.get("fid_curve") or []]
    if curve:
        example = next((row for row in rows if row.get("fid_curve") and row.get("n_fake") and row.get("n_real")), None)
        sizes = ""
        if example:
            at = example["fid_curve"][-1]["n"]
            sizes = f": {example['n_fake']} samples against {example['n_real']} real images sit at {at}"
        fixed["fid_against_n"] = (
            f"FID against the number of images (log scales), at effective n = 2 / (1/n samples + 1/n real) from "
            f"{min(curve)} to {max(curve)} per run (the equal size with the same finite-sample bias{sizes}), with "
            "95 % intervals and each run's FID extrapolated to infinitely many images (FID∞, in the legend): FID "
            "falls as n grows, so runs are compared at one n."
        )
    if inputs.runs:
        train_size = len(inputs.runs[0].gallery(inputs.seed, inputs.extractors)[2])
        fixed["nearest_neighbours"] = (
            f"n = {GALLERY_SAMPLES} prior samples per run (seed {inputs.seed}, left column) beside their "
            f"{GALLERY_NEIGHBOURS} nearest images among the {train_size} training images, in the classifier's "
            "feature space: a model that copies shows a sample beside its twin."
        )
    return fixed


def figure_captions(inputs: ReportInputs, rows: list[dict], names) -> dict[str, str]:
    """One sentence per figure of the report (by its name in ``report_figures``): what it shows and with which n.
    A figure this does not know gets no caption (the report test then fails, so a new figure is captioned)."""
    fixed = _fixed_captions(inputs, rows)
    by_run = {run.name: run for run in inputs.runs}
    captions = {}
    for name in names:
        run = by_run.get(name.removeprefix("training_")) if name.startswith("training_") else None
        if run is not None:
            d_panel = (
                "; the lower panel: D's mean output on real and generated images"
                if run.capabilities.discriminator
                else ""
            )
            captions[name] = (
                f"Training curves of {run.name} over its n = {run.info.get('step')} steps (history.csv, smoothed "
                f"to at most {CURVE_POINTS} points): the loss terms it logged{d_panel}."
            )
        elif name in fixed:
            captions[name] = fixed[name]
    return captions


def _compression_line(inputs: ReportInputs, stored: bool) -> list[str]:
    """The README's line on the compression table: where it is, or how to compute it (runs with an encoder only)."""
    if stored:
        return [
            "- `tables/compression.csv` and `tables/compression.md`: bits per image against PSNR / SSIM / MSE of the "
            "runs' codes and of JPEG, WebP and PNG on the same test images (from each run's `compression.json`)."
        ]
    encoders = [run for run in inputs.runs if run.capabilities.encoder]
    if not encoders:
        return []
    return [
        "- Not included: the compression figure and tables (`figures/compression.*`, `tables/compression.*`), "
        "which have not been computed for these runs. Compute them in the dashboard's *Reconstruction* tab "
        "(*Compression*) or with `python -m evaluation compress RUN_DIR…` on the folders of "
        + ", ".join(run.name for run in encoders)
        + ", then build the zip again."
    ]


def readme(inputs: ReportInputs, sanity_n: int | None, compression_stored: bool = False) -> str:
    """What is in the zip, and what is not and why (the sanity panel and the compression rows are included only
    when they were computed)."""
    dataset = inputs.dataset or "the runs' dataset"
    lines = [
        "# Report",
        "",
        f"Runs: {', '.join(run.name for run in inputs.runs) or 'none'}.",
        "",
        "- `methods.md`: a methods paragraph to adapt and cite (data, models, budgets, machine, evaluation).",
        "- `findings.md`: the textbook claims tested on these runs.",
        "- `figures.md`: one caption per figure (what it shows, with which n); the figures are in `figures/` as PNG "
        "and PDF, the sample grids in `grids/`.",
        "- `tables/summary.tex`: the page-width LaTeX table (booktabs) of the headline columns; `tables/metrics.md` "
        "the summary table; `tables/metrics.csv` every column (`tables/columns.md` says what each one is, with its "
        "unit); `tables/fairness.csv` what each run was given.",
    ]
    if sanity_n is not None:
        lines.append(
            "- `tables/sanity.md`: the metric sanity panel (every metric on real and on corrupted images, "
            f"n = {sanity_n})."
        )
    else:
        lines.append(
            "- Not included: the metric sanity panel (`tables/sanity.md`), which has not been computed for "
            f"{dataset}. Compute it in the dashboard's *Sanity & copying* tab (about a minute per 1 000 images) or "
            f"with `python -m evaluation sanity --dataset {dataset} --n 1000 --markdown sanity.md`, then build the "
            "zip again."
        )
    lines += _compression_line(inputs, compression_stored)
    return "\n".join(lines) + "\n"


def figures_markdown(captions: dict[str, str], files: dict[str, list[str]]) -> str:
    """``figures.md``: each figure's files, then its caption."""
    lines = ["# Figures", "", "One sentence per figure: what it shows and with which n.", ""]
    for name, caption in captions.items():
        lines.append(f"- {', '.join(f'`{path}`' for path in files[name])}: {caption}")
    return "\n".join(lines) + "\n"


def tables(inputs: ReportInputs, rows: list[dict]) -> dict[str, str]:
    """The zip's tables and texts by path: the metric tables (when there are rows), the fairness table, the
    sanity panel (when computed), the methods paragraph, the findings and the README."""
    from .methods import methods_paragraph
    from .report import columns_markdown, markdown_table, sanity_markdown, to_csv, to_latex, to_markdown

    panel, sanity_n = sanity_panel(inputs)
    compression = inputs.compression()
    files = {"README.md": readme(inputs, sanity_n, bool(compression))}
    if rows:
        files |= {
            "tables/metrics.csv": to_csv(rows),
            "tables/columns.md": columns_markdown(rows),
            "tables/metrics.md": to_markdown(rows),
            "tables/summary.tex": to_latex(rows),
        }
    files["tables/fairness.csv"] = fairness_frame(inputs.runs).to_csv(index=False)
    if panel:
        files["tables/sanity.md"] = sanity_markdown(panel)
    if compression:
        files["tables/compression.csv"] = pd.DataFrame(compression).to_csv(index=False)
        files["tables/compression.md"] = "\n".join(markdown_table(compression_table(compression))) + "\n"
    runs = [
        ({**run.info, "run_name": run.name}, run.capabilities.title, run.model().parameter_counts())
        for run in inputs.runs
    ]
    augmentation = stored_by_run(inputs.runs)  # its figure is drawn exactly when there are stored results
    files["methods.md"] = methods_paragraph(runs, rows, augmentation, compression)
    found = findings_module.assess(list(inputs.runs), rows)
    files["findings.md"] = findings_module.to_markdown(found, list(inputs.runs))
    return files


def build_zip(inputs: ReportInputs, progress=None) -> bytes:
    """README.md, figures/*.png + *.pdf (metric charts, training curves, β sweep, samples, nearest-neighbour
    gallery) with their captions in figures.md, tables/summary.tex (page width, headline columns),
    tables/metrics.csv (every column) with tables/columns.md, tables/metrics.md, tables/fairness.csv,
    tables/sanity.md and tables/compression.csv + .md (when computed; README.md says when they are not),
    methods.md, findings.md, grids/*.png.
    ``progress(fraction, text)`` is told about each figure exported."""
    rows = comparison_rows(inputs.runs)
    figures = report_figures(inputs, rows)
    texts = tables(inputs, rows)
    captions = figure_captions(inputs, rows, figures)
    files = {name: [f"figures/{name}.{fmt}" for fmt in FIGURE_FORMATS] for name in figures}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in texts.items():
            archive.writestr(path, text)
        for run in inputs.runs:
            name = f"{run.name}-samples-seed{inputs.seed}"
            files[name] = [f"grids/{name}.png"]
            count = draws_count(run, inputs.n_samples, ONE_ROW_PER_CLASS)
            captions[name] = f"The sample grid of {run.label}: n = {count} prior samples from seed {inputs.seed}."
            archive.writestr(files[name][0], sample_grid_png(run, inputs.n_samples, inputs.seed, GRID_SCALE))
        archive.writestr("figures.md", figures_markdown(captions, files))
        for i, (name, figure) in enumerate(figures.items()):
            if progress:
                progress(i / len(figures), f"exporting {name}")
            for fmt in FIGURE_FORMATS:
                archive.writestr(f"figures/{name}.{fmt}", figure_bytes(figure, fmt))
    return buffer.getvalue()
