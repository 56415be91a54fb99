"""The report a student pastes, read as a marker would: one caption and each note once, no column that is n/a
for every row, a unit on every column, a methods paragraph that says what the numbers are (feature space,
machine, how many images were inverted, what the recipe changed), and a caption for every figure in the zip."""

from __future__ import annotations

import copy
import io
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from evaluation import load_metrics
from evaluation.methods import current_machine, indefinite_article, methods_paragraph
from evaluation.metric_specs import METRICS, UNITLESS
from evaluation.report import readable_warning, to_csv, to_latex, to_markdown

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = ("vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k")
WARNINGS = [
    "the train split has only 4500 images: FID compares 4500 real with 5000",
    "the floor uses two real halves of 2250 (not 5000): the train split holds 4500",
]


def _row(run: str, model: str, capabilities: dict, **values) -> dict:
    encoder = capabilities.get("encoder", False)
    return {
        "run": run,
        "model": model,
        "dataset": "mnist5k",
        "sampler": "prior",
        "extractor_id": "cnn-mnist5k-abc",
        "extractor_test_acc": 0.98,
        "n_real": 4500,
        "n_test": 500,
        "n_fake": 5000,
        "seeds": [0],
        "bootstrap": 200,
        "reference": "train split",
        "fid": 6.5,
        "fid_ci_low": 6.0,
        "fid_ci_high": 7.0,
        "fid_ratio": 10.6,
        "precision": 0.81,
        "recall": 0.72,
        "recon_mse": 0.02,
        "recon_method": "encode-decode" if encoder else "latent inversion (Adam, 2 restarts, 50 steps)",
        "recon_n": 500 if encoder else 16,
        "label_accuracy": None,
        "cas": None,
        "elbo_nats": None,
        "warnings": list(WARNINGS),
        "capabilities": {"encoder": False, "posterior": False, "discriminator": False, "num_classes": None}
        | capabilities,
        "protocol": {"extractor_id": "cnn-mnist5k-abc", "n_fake": 5000, "inversion_steps": 50},
        **values,
    }


# four rows as the committed default runs give them: two VAEs, an autoencoder and a GAN
ROWS = [
    _row("vae-mnist5k", "vae", {"encoder": True, "posterior": True}, elbo_nats=-109.0),
    _row("vae-beta4-mnist5k", "vae", {"encoder": True, "posterior": True}, elbo_nats=-120.4),
    _row("ae-mnist5k", "ae", {"encoder": True}),
    _row("dcgan-mnist5k", "dcgan", {"discriminator": True}),
]


def committed_rows() -> list[dict]:
    """The default runs' stored prior rows at n = 5 000 (what the dashboard's report shows), or skip."""
    rows = []
    for name in DEFAULT_RUNS:
        stored = [
            {**row, "run": name}
            for row in load_metrics(ROOT / "checkpoints" / name).values()
            if row.get("n_fake") == 5000 and row.get("sampler") == "prior"
        ]
        if not stored:
            pytest.skip(f"checkpoints/{name} has no stored prior row at n = 5000")
        rows.append(stored[0])
    return rows


def latex_table(tex: str) -> tuple[list[str], list[list[str]]]:
    """(header cells, body rows) of the booktabs table."""
    body = tex.split(r"\toprule", 1)[1].split(r"\bottomrule", 1)[0]
    header, rest = body.split(r"\midrule", 1)
    split = lambda line: [cell.strip() for cell in line.strip().removesuffix(r"\\").split(" & ")]  # noqa: E731
    return split(header), [split(line) for line in rest.strip().splitlines()]


def caption_of(tex: str) -> str:
    start = tex.index(r"\caption{") + len(r"\caption{")
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(tex[i], 0) if tex[i - 1] != "\\" else 0
        i += 1
    return tex[start : i - 1]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.])\s+(?=[A-Z\[])", text) if s.strip()]


# --- the LaTeX table ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["hand-made", "committed"])
def test_latex_has_one_caption_and_each_fact_and_note_once(source):
    rows = ROWS if source == "hand-made" else committed_rows()
    tex = to_latex(rows)
    assert tex.count(r"\caption{") == 1
    caption = caption_of(tex)
    said = sentences(caption)
    assert len(said) == len(set(said)), [s for s in said if said.count(s) > 1]
    assert caption.count("features") <= 2 and caption.count("bootstrap interval") == 1
    notes = [line.removeprefix(r"\item ").strip() for line in tex.splitlines() if line.startswith(r"\item ")]
    assert len(notes) == len(set(notes))
    for warning in {w for row in rows for w in row.get("warnings") or []}:
        escaped = readable_warning(warning).replace("_", r"\_").replace("%", r"\%")  # columns by their labels
        assert tex.count(escaped) == 1, warning  # each note once, however many rows it concerns
    assert "fid\\_ratio" not in tex  # the committed rows' floor warning names the column by its label
    assert r"\end{itemize}" in tex.split(r"\end{table}")[0]  # the notes travel with the float


def test_latex_is_plain_ascii_so_it_compiles_without_unicode_setup():
    tex = to_latex(committed_rows())
    assert tex.isascii(), sorted({c for c in tex if not c.isascii()})


@pytest.mark.parametrize("source", ["hand-made", "committed"])
def test_no_exported_column_is_na_for_every_row(source):
    rows = ROWS if source == "hand-made" else committed_rows()
    header, body = latex_table(to_latex(rows))
    assert all(len(cells) == len(header) for cells in body)
    for i, title in enumerate(header):
        assert any(cells[i] != "n/a" for cells in body), title
    assert all(label not in " ".join(header) for label in ("label accuracy", "CAS"))  # none of these is conditional
    assert any("ELBO" in title for title in header)  # n/a for two rows, a value for the VAEs: kept
    markdown = to_markdown(rows).splitlines()
    md_header = [c.strip() for c in markdown[0].strip("|").split("|")]
    md_rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown[2 : 2 + len(rows)]]
    for i, title in enumerate(md_header):
        assert any(cells[i] != "n/a" for cells in md_rows), title
    frame = pd.read_csv(io.StringIO(to_csv(rows)))
    assert not [column for column in frame.columns if frame[column].isna().all()]
    assert {"label_accuracy", "cas"}.isdisjoint(frame.columns)
    if source == "hand-made":
        assert "left out" in to_latex(rows).lower() and "label accuracy" in caption_of(to_latex(rows))


def _unlatex(cell: str) -> str:
    for latex, text in (
        (r"$\times 10^3$", "×10³"),
        (r"$\times$", "×"),
        (r" $\uparrow$", ""),
        (r" $\downarrow$", ""),
        (r"$\infty$", "∞"),
        (r"\_", "_"),
    ):
        cell = cell.replace(latex, text)
    return cell


def test_every_metric_declares_a_unit_and_every_column_header_shows_it():
    assert all(m.unit for m in METRICS.values())  # a pure number is declared UNITLESS, never left blank
    expected = {  # a metric's column: its label and its unit, unless it is a declared pure number
        m.label if m.unit == UNITLESS or m.unit in m.label else f"{m.label} ({m.unit})" for m in METRICS.values()
    }
    text_columns = {"run", "model", "sampler", "recon via", "extractor"}
    tex_header, _ = latex_table(to_latex(ROWS))
    md_header = [c.strip() for c in to_markdown(ROWS).splitlines()[0].strip("|").split("|")]
    for header in ([_unlatex(cell) for cell in tex_header], [c.replace(" ↑", "").replace(" ↓", "") for c in md_header]):
        for cell in header:
            assert cell in text_columns | expected | {"n (samples)"}, cell
    assert "ELBO (nats/image) ↑" in md_header and "recon MSE (per pixel) ↓" in md_header
    assert "ELBO (nats/image)" in [_unlatex(cell) for cell in tex_header]


# --- the methods paragraph ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, article",
    [(8, "an"), (11, "an"), (18, "an"), (80, "an"), (1, "a"), (16, "a"), (800, "an"), (8000, "an"), (100, "a")],
)
def test_indefinite_article_follows_how_the_number_is_read(number, article):
    assert indefinite_article(number) == article


def _info(run: str) -> dict:
    from generators.checkpoints import read_run_info

    path = ROOT / "checkpoints" / run
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"checkpoints/{run} is missing")
    return {**read_run_info(path), "run_name": run}


def test_methods_say_feature_space_machine_inversion_count_and_article():
    unrecorded = lambda info: {k: v for k, v in info.items() if k != "machine"}  # noqa: E731 (runs made before it)
    gan = unrecorded(_info("dcgan-mnist5k"))
    vae = unrecorded(_info("vae-mnist5k"))
    rows = [ROWS[0], {**ROWS[3], "recon_n": 24}]  # the count comes from the row, whatever it is
    text = methods_paragraph([(vae, "VAE", {"model": 1}), (gan, "DCGAN", {"G": 1, "D": 1})], rows)
    assert "an 8-dimensional" in text and "a 8-" not in text
    assert "feature space" in text and "Inception" in text and "not comparable" in text and "cnn-mnist5k-abc" in text
    inversion = next(s for s in sentences(text) if "latent inversion" in s and "held-out" in s)
    assert "24 held-out test images" in inversion and "16" not in inversion
    assert "rests on 24 images" in text
    assert current_machine() in text and "current machine" in text and "not record" in text
    gan_stored = {**gan, "machine": "Intel Xeon E5-2680, 8 cores, no GPU"}
    text = methods_paragraph([(gan_stored, "DCGAN", {"G": 1, "D": 1})], rows)
    assert "Intel Xeon E5-2680, 8 cores, no GPU" in text and current_machine() not in text


def test_methods_list_what_the_recipe_changes_from_its_config():
    gan = _info("dcgan-mnist5k")
    text = methods_paragraph([(gan, "DCGAN", {"G": 1, "D": 1})], [])
    assert "Radford et al. 2016" in text  # the reference the model's module cites
    config = gan["model_config"]
    changed = (
        f"ema = {config['ema']} (default 0.0",
        f"lr_g = {config['lr_g']} (default 0.0002",
        f"r1 = {config['r1']} (default 0.0",
    )
    assert config["lr_g"] != 2e-4 and config["r1"] != 0 and config["ema"] != 0  # the committed recipe changes them
    for fact in (*changed, "batch_size = 64 (default 128)"):
        assert fact in text, fact
    assert "loss = ns" in text and "diffaug = none" in text  # the rest of the recipe, at its defaults
    other = copy.deepcopy(gan)
    other["model_config"].update(loss="hinge", diffaug="translation,cutout", ema=0.0)
    text = methods_paragraph([(other, "DCGAN", {"G": 1, "D": 1})], [])
    assert "loss = hinge (default ns" in text and "diffaug = translation,cutout (default none" in text
    assert "ema = 0.0" in text and "ema = 0.999" not in text


# --- the zip --------------------------------------------------------------------------------------------------


@pytest.fixture
def bare_streamlit(monkeypatch, dashboard_runs):
    from dashboard.state import CHECKPOINTS_ENV

    monkeypatch.setenv(CHECKPOINTS_ENV, str(dashboard_runs))
    return dashboard_runs


def test_zip_captions_every_figure_with_its_n_and_says_when_the_sanity_panel_is_missing(bare_streamlit, monkeypatch):
    from dashboard import report
    from dashboard.state import Selection, scan_runs
    from evaluation import bundle

    monkeypatch.setattr(bundle, "figure_bytes", lambda figure, fmt: b"figure")  # pixels: other tests
    runs, _ = scan_runs()
    archive = zipfile.ZipFile(io.BytesIO(report.build_zip(Selection(tuple(runs), seed=3, n_samples=16, scale=1))))
    names = set(archive.namelist())
    figures = {name for name in names if name.startswith(("figures/", "grids/"))}
    captions = archive.read("figures.md").decode()
    lines = [line for line in captions.splitlines() if line.startswith("- ")]
    captioned = {path for line in lines for path in re.findall(r"`([^`]+)`", line.split(": ", 1)[0])}
    assert captioned == figures
    assert all("n = " in line.split(": ", 1)[1] for line in lines), lines
    assert len(lines) == len({Path(name).stem for name in figures})  # one sentence per figure, not per format
    assert f"n = {runs[0].info['step']} steps" in captions  # a training curve's n is its steps
    from evaluation.fid import effective_n  # FID against n: its x is the effective n, and the example adds up

    samples, real, at = map(int, re.search(r"(\d+) samples against (\d+) real images sit at (\d+)", captions).groups())
    assert round(effective_n(samples, real)) == at
    assert "tables/sanity.md" not in names
    assert "has not been computed" in archive.read("README.md").decode()
    methods = archive.read("methods.md").decode()
    assert "feature space" in methods and "machine" in methods
    assert "| `fid` |" in archive.read("tables/columns.md").decode()
