"""What a student pastes into a report: the page-width LaTeX table of the headline columns, the methods
paragraph, and figure export (PNG/PDF/SVG through the machine's Chromium)."""

from __future__ import annotations

import shutil

import plotly.graph_objects as go
import pytest

from evaluation.methods import methods_paragraph
from evaluation.report import HEADLINE_KEYS, to_latex

ROW = {
    "run": "vae-x",
    "model": "vae",
    "sampler": "prior",
    "n_fake": 1000,
    "n_real": 1000,
    "fid": 12.5,
    "fid_ci_low": 11.0,
    "fid_ci_high": 14.0,
    "fid_ratio": 3.1,
    "precision": 0.8,
    "recall": 0.7,
    "extractor_id": "classifier-abc",
    "extractor_test_acc": 0.98,
    "seeds": [0],
    "bootstrap": 200,
    "reference": "train split",
}


def test_latex_table_is_page_width_with_the_headline_columns_only():
    tex = to_latex([ROW])
    assert r"\resizebox{\textwidth}{!}{%" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    header = next(line for line in tex.splitlines() if line.startswith(r"\begin{tabular}"))
    assert len(header.split("{", 2)[2].rstrip("}")) == len(HEADLINE_KEYS)
    assert "12.50 [11.00, 14.00]" in tex  # value [95 % interval]


def test_warnings_name_a_column_by_its_label():
    """A warning stored by an older evaluation names a column by its key (fid_ratio): every export shows the
    column's label instead, as the table's header does."""
    from evaluation.metric_specs import metric
    from evaluation.report import to_markdown, to_text

    stored = "a floor at smaller n is higher, so fid_ratio is optimistic; fid_floor too"
    row = {**ROW, "warnings": [stored]}
    label, floor = metric("fid_ratio").label, metric("fid_floor").label
    assert f"so {label} is optimistic; {floor} too" in to_latex([row]) and "fid\\_ratio" not in to_latex([row])
    for text in (to_markdown([row]), to_text([row], width=200)):
        assert f"so {label} is optimistic; {floor} too" in text and "fid_ratio is" not in text


def test_methods_paragraph_says_what_was_done():
    info = {
        "run_name": "vae-x",
        "model": "vae",
        "dataset": "mnist5k",
        "model_config": {"latent_dim": 8, "beta": 4.0},
        "train_config": {"batch_size": 64},
        "step": 2500,
        "epoch": 36,
        "seed": 0,
        "seconds": 291.0,
    }
    text = methods_paragraph([(info, "VAE", {"model": 1_500_000})], [ROW])
    for fact in (
        "4 500 training",
        "vae-x",
        "VAE",
        "8-dimensional",
        "1.50 M",
        "beta = 4.0",
        "2500 steps",
        "batch size 64",
        "291 s",
        "1000 samples (prior sampler, sampling seed 0)",
        "classifier-abc",
        "(its class is right for 98.0% of the test images)",
        "200 resamples",
    ):
        assert fact in text, fact
    several = methods_paragraph([(info, "VAE", {"model": 1_500_000})], [{**ROW, "seeds": [0, 1]}])
    assert "(prior sampler, sampling seeds 0, 1)" in several


@pytest.mark.skipif(not shutil.which("chromium"), reason="figure export needs Debian's chromium")
def test_figures_export_as_png_pdf_and_svg():
    from evaluation.figures import figure_bytes

    figure = go.Figure(go.Bar(x=["a", "b"], y=[1, 3]))
    assert figure_bytes(figure, "png").startswith(b"\x89PNG\r\n\x1a\n")
    assert figure_bytes(figure, "pdf").startswith(b"%PDF-")
    assert b"<svg" in figure_bytes(figure, "svg")[:500]


def test_methods_paragraph_says_the_extractor_of_a_factor_set_knows_the_factors():
    info = {"run_name": "vae-s", "model": "vae", "dataset": "sprites", "model_config": {}, "train_config": {}}
    sprites_text = methods_paragraph([(info, "VAE", {"model": 1})], [{**ROW, "dataset": "sprites"}])
    digits_text = methods_paragraph([({**info, "dataset": "mnist5k"}, "VAE", {"model": 1})], [ROW])
    assert "every generative factor" in sprites_text and "every generative factor" not in digits_text


def test_a_value_that_rounds_to_zero_reads_zero_not_minus_zero():
    """The training images' FID against their own reference is −8.5e-14 in floats: the table says 0.00."""
    from evaluation.report import to_markdown

    table = to_markdown([{"run": "copier", "fid": -8.5e-14, "precision": -0.004}])
    assert "| 0.00 |" in table and "-0.00 |" not in table
    assert "-0.004" in table  # a value that does not round to zero keeps its sign


def test_the_sanity_table_says_why_its_cases_score_different_numbers_of_images():
    """The zip's tables/sanity.md and the dashboard share one sentence: a case that keeps only some test images
    (one class: 50 of 500) scores fewer, and its FID is biased upwards."""
    from evaluation.report import sanity_markdown

    common = {"dataset": "mnist5k", "extractor_id": "cnn", "bootstrap": 10, "n_real": 1000, "fid": 1.0}
    rows = [
        {**common, "case": "held-out (baseline)", "meaning": "…", "n_fake": 500},
        {**common, "case": "half the classes", "meaning": "…", "n_fake": 250},
        {**common, "case": "one class", "meaning": "…", "n_fake": 50},
    ]
    text = sanity_markdown(rows)
    assert "each case scores at most 500 images" in text and "reference of 1000 training images" in text
    assert "(half the classes 250, one class 50): FID is biased upwards at small n" in text
    codes = {"case": "factors as codes", "meaning": "…", "n_fake": 1000, "mig": 0.9, "dataset": "sprites"}
    text = sanity_markdown([*rows, codes])
    assert "each case scores at most 500 images" in text  # the code rows are not image cases
    assert "The known-answer code rows (factors as codes) score 1000 codes against the images' true factors" in text
