"""Truth tests of the figures a student takes away: the report zip's charts show each trace in its own colour (PNG
and PDF, checked on the pixels), stacked panels' axis titles and interpolation row titles do not overprint, log
axes read whole numbers, and the interpolation's default real pair is two different digits.

Importing Streamlit makes its placeholder template ('#000001', '#000002', …) plotly's default: a figure exported
with it has every trace black, which only pixels (or the drawn colours) reveal."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from PIL import Image, ImageFont

needs_chromium = pytest.mark.skipif(not shutil.which("chromium"), reason="figure export needs Debian's chromium")

COLORWAY_SIZE = 10  # the lab template's colorway: more traces than this repeat colours
MIN_CHROMA = 40  # a pixel counts as coloured when its channels differ by this much (0-255) …
MIN_BRIGHTEST = 140  # … and it is not a dark text colour (plotly_white's text is a dark navy, #2a3f5f)
HUE_TOLERANCE = 6  # degrees: one trace colour (and its anti-aliased blends with white, which keep its hue)
MIN_PIXELS = 150  # at twice the layout size: a legend swatch alone has ~300 pixels of its trace's colour


# --- helpers -------------------------------------------------------------------------------------------------


def colour_clusters(rgb: np.ndarray, min_pixels: int = MIN_PIXELS) -> list[int]:
    """The hues (degrees) of the distinct saturated colours drawn in an image (H x W x 3, uint8): one per trace
    colour. Greys, black, white and dark text are left out; a colour needs ``min_pixels`` pixels to count."""
    pixels = rgb.reshape(-1, 3).astype(float)
    high, low = pixels.max(1), pixels.min(1)
    keep = (high - low >= MIN_CHROMA) & (high >= MIN_BRIGHTEST)
    r, g, b = pixels[keep].T
    high, chroma = high[keep], (high - low)[keep]
    hue = (
        np.where(high == r, ((g - b) / chroma) % 6, np.where(high == g, (b - r) / chroma + 2, (r - g) / chroma + 4))
        * 60
    )
    counts = np.bincount(np.round(hue).astype(int) % 360, minlength=360)
    peaks = []
    while counts.max() >= min_pixels:
        peak = int(counts.argmax())
        peaks.append(peak)
        counts[[(peak + d) % 360 for d in range(-HUE_TOLERANCE, HUE_TOLERANCE + 1)]] = 0
    return peaks


def is_grey(colour: str) -> bool:
    """An explicit trace colour that is black or grey ('black', '#444', 'rgb(0,0,0)')."""
    rgb = np.array(Image.new("RGB", (1, 1), colour).getpixel((0, 0)), dtype=int)
    return int(rgb.max() - rgb.min()) < MIN_CHROMA


def explicit_colour(trace) -> str | None:
    """The single colour a bar or scatter trace sets itself, or None (it takes one from the colorway)."""
    line = getattr(trace, "line", None)
    lines = trace.type == "scatter" and "lines" in (trace.mode or "lines")
    for colour in ((line.color if line else None) if lines else None, trace.marker.color):
        if isinstance(colour, str):
            return colour
    return None


def chart_traces(figure: go.Figure) -> list:
    return [t for t in figure.data if t.type in ("bar", "scatter") and t.visible in (None, True)]


def expected_colours(figure: go.Figure) -> tuple[int, int]:
    """(distinct saturated colours, distinct grey/black colours) the figure's traces must be drawn in: each trace
    without an explicit colour takes its own colour from the colorway (up to its ten colours)."""
    explicit = [explicit_colour(t) for t in chart_traces(figure)]
    automatic = min(sum(colour is None for colour in explicit), COLORWAY_SIZE)
    saturated = {c for c in explicit if c is not None and not is_grey(c)}
    greys = {c for c in explicit if c is not None and is_grey(c)}
    return automatic + len(saturated), len(greys)


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pdf_pixels(data: bytes, width: int, tmp_path) -> np.ndarray:
    """The PDF's page rendered by poppler's pdftoppm at ``width`` pixels."""
    source = tmp_path / "figure.pdf"
    source.write_bytes(data)
    subprocess.run(
        ["pdftoppm", "-png", "-singlefile", "-scale-to-x", str(width), "-scale-to-y", "-1", source, tmp_path / "page"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))


def svg_y_titles(svg: str) -> list[tuple[str, float, float, float, str]]:
    """(axis, x, y centre, font size, text) of every vertical axis title in a plotly SVG export."""
    pattern = re.compile(
        r'<text class="(y\d*)title"[^>]*?x="([\d.]+)" y="([\d.]+)"[^>]*?font-size: ([\d.]+)px[^>]*>([^<]*)</text>'
    )
    return [(axis, float(x), float(y), float(size), text) for axis, x, y, size, text in pattern.findall(svg)]


def text_width(text: str, size: float) -> float:
    """About how wide ``text`` is drawn: measured in Liberation Sans (the Arial Chromium draws plotly's labels
    in here) when it is installed, else 0.45 em per character."""
    try:
        return ImageFont.truetype("LiberationSans-Regular.ttf", round(size)).getlength(text)
    except OSError:
        return 0.45 * size * len(text)


def svg_tick_labels(svg: str, axis: str) -> list[tuple[str, float]]:
    """(text, font size) of the tick labels of one axis ('x', 'y', 'x2', …) in a plotly SVG export, in the
    order plotly draws them (increasing values)."""
    pattern = re.compile(rf'<g class="{axis}tick"><text([^>]*)>([^<]*)</text>')
    return [(text, float(re.search(r"font-size: ([\d.]+)px", style).group(1))) for style, text in pattern.findall(svg)]


def log_axes(figure: go.Figure) -> list[str]:
    """The SVG names ('x', 'y', 'y2', …) of the figure's log axes."""
    return [
        name.replace("axis", "") for name in figure.layout if name[1:5] == "axis" and figure.layout[name].type == "log"
    ]


def as_number(label: str) -> float:
    return float(label.replace("\u2212", "-").replace("\u2009", "").replace(",", ""))


# --- the report zip, built the way the dashboard builds it ---------------------------------------------------


@pytest.fixture(scope="module")
def report(dashboard_runs):
    """(the report zip, its figures by name) for the tiny runs, built by the dashboard (``evaluation.bundle``)."""
    from dashboard.report import build_zip, report_inputs
    from dashboard.state import CHECKPOINTS_ENV, Selection, scan_runs
    from evaluation.bundle import report_figures
    from evaluation.rows import comparison_rows

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CHECKPOINTS_ENV, str(dashboard_runs))
        runs, _ = scan_runs()
        selection = Selection(tuple(runs), seed=3, n_samples=16, scale=1)
        archive = zipfile.ZipFile(io.BytesIO(build_zip(selection)))
        figures = report_figures(report_inputs(selection), comparison_rows(selection.runs))
    charts = {name: figure for name, figure in figures.items() if chart_traces(figure)}
    assert {"fid", "precision_recall"} <= set(charts) and any(name.startswith("training_dcgan") for name in charts)
    return archive, charts


@needs_chromium
def test_every_report_chart_png_shows_each_trace_in_its_own_colour(report):
    archive, charts = report
    for name, figure in charts.items():
        saturated, greys = expected_colours(figure)
        found = colour_clusters(png_pixels(archive.read(f"figures/{name}.png")))
        assert len(found) >= saturated, f"{name}.png: {len(found)} trace colours drawn for {saturated} expected"
        assert len(found) + greys >= min(len(chart_traces(figure)), COLORWAY_SIZE), name


@needs_chromium
@pytest.mark.skipif(
    not shutil.which("pdftoppm"), reason="the PDF pixel check renders pages with poppler-utils' pdftoppm"
)
def test_every_report_chart_pdf_shows_each_trace_in_its_own_colour(report, tmp_path):
    archive, charts = report
    for name, figure in charts.items():
        saturated, _ = expected_colours(figure)
        width = 2 * int(figure.layout.width or 1000)  # the PNG's size, so the same pixel threshold holds
        found = colour_clusters(pdf_pixels(archive.read(f"figures/{name}.pdf"), width, tmp_path))
        assert len(found) >= saturated, f"{name}.pdf: {len(found)} trace colours drawn for {saturated} expected"


@needs_chromium
def test_fid_chart_bars_and_floor_and_training_curves_are_told_apart(report):
    """The two charts a report always has: FID bars (one colour) with the black floor dash over them, and the
    DCGAN's d_loss / g_loss / d_real / d_fake curves, four colours."""
    archive, charts = report
    fid = png_pixels(archive.read("figures/fid.png"))
    assert len(colour_clusters(fid)) >= 1
    assert (fid.max(2) < 40).sum() > 2000, "the floor dash is drawn black over coloured bars"
    name = next(name for name in charts if name.startswith("training_dcgan"))
    curves = {t.name for t in charts[name].data}
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= curves
    assert len(colour_clusters(png_pixels(archive.read(f"figures/{name}.png")))) >= len(curves)


@needs_chromium
def test_figures_built_under_streamlits_template_export_in_colour(monkeypatch):
    """Whatever the default template was when a figure was built (Streamlit's import sets its own), the export
    and the page draw it with the lab's template: the exported SVG paints the two traces in two real colours."""
    import streamlit  # noqa: F401 - registers the "streamlit" template

    from dashboard import export

    monkeypatch.setattr(pio.templates, "default", "streamlit")
    figure = go.Figure([go.Bar(x=["a", "b"], y=[1, 3], name="bars"), go.Scatter(x=["a", "b"], y=[2, 1], name="line")])
    svg = export.figure_bytes(figure, "svg").decode()
    fills = set(re.findall(r"fill: (rgb\(\d+, \d+, \d+\))", svg)) | set(
        re.findall(r"stroke: (rgb\(\d+, \d+, \d+\))", svg)
    )
    assert len([c for c in fills if not is_grey(c)]) >= 2, fills

    drawn = []
    monkeypatch.setattr(export.st, "plotly_chart", lambda figure, **kw: drawn.append(figure))
    monkeypatch.setattr(export, "download_buttons", lambda *args, **kw: None)
    page_figure = go.Figure(go.Bar(x=["a"], y=[1]))
    export.chart(page_figure, "x", "x")
    colorway = drawn[0].layout.template.layout.colorway
    assert colorway == pio.templates["plotly_white"].layout.colorway and not any(
        c.startswith("#0000") for c in colorway
    )


# --- titles that do not overprint, log axes that read whole numbers ---------------------------------------------


def assert_y_titles_apart(svg: str, name: str) -> None:
    """No two vertical axis titles on the same side overlap (with 4 px between them)."""
    titles = svg_y_titles(svg)
    for i, (axis, x, y, size, text) in enumerate(titles):
        half = text_width(text, size) / 2
        for other, x2, y2, size2, text2 in titles[i + 1 :]:
            if abs(x - x2) < size:  # drawn in the same column
                half2 = text_width(text2, size2) / 2
                gap = max(y2 - half2 - (y + half), y - half - (y2 + half2))
                assert gap >= 4, f"{name}: the {axis} and {other} titles overprint ({text!r} / {text2!r})"


@needs_chromium
def test_stacked_panels_axis_titles_do_not_overprint(report):
    from evaluation.figures import figure_bytes

    _, charts = report
    stacked = [name for name, figure in charts.items() if len(svg_y_titles(figure_bytes(figure, "svg").decode())) > 1]
    assert any(name.startswith("training_dcgan") for name in stacked)  # the DCGAN's losses and D's outputs
    for name in stacked:
        assert_y_titles_apart(figure_bytes(charts[name], "svg").decode(), name)


def assert_log_ticks_read_whole_numbers(figure: go.Figure, name: str) -> None:
    from evaluation.figures import figure_bytes

    svg = figure_bytes(figure, "svg").decode()
    for axis in log_axes(figure):
        labels = svg_tick_labels(svg, axis)
        assert len(labels) >= 2, f"{name}: {axis} axis has {len(labels)} tick labels"
        assert len({size for _, size in labels}) == 1, f"{name}: {axis} axis mixes small-print labels {labels}"
        values = [as_number(text) for text, _ in labels]
        assert values == sorted(set(values)), f"{name}: {axis} axis reads {[text for text, _ in labels]}"


@needs_chromium
def test_log_axes_label_whole_numbers_at_realistic_magnitudes():
    """FIDs from 0.6 to 12 at n = 500 … 5000 (the committed runs' range): plotly's own log ticks read "5", "2"
    for 0.5, 2000 …; the lab's read 0.5, 2000."""
    from evaluation.charts import fid_curve_figure, fid_figure

    rows = []
    for i, fid in enumerate((0.95, 1.98, 6.65, 9.25)):
        curve = [
            {"n": n, "fid": fid * (1 + 300 / n), "ci_low": fid, "ci_high": fid * 1.5} for n in (500, 1000, 2000, 5000)
        ]
        rows.append(
            {
                "run": f"run{i}",
                "fid": fid,
                "fid_ci_low": fid * 0.9,
                "fid_ci_high": fid * 1.1,
                "fid_floor": 0.6,
                "n_fake": 5000,
                "fid_curve": curve,
            }
        )
    for name, figure in (("fid", fid_figure(rows)), ("fid_against_n", fid_curve_figure(rows))):
        assert log_axes(figure), name
        assert_log_ticks_read_whole_numbers(figure, name)


@needs_chromium
def test_report_log_axes_label_whole_numbers(report):
    _, charts = report
    for name, figure in charts.items():
        assert_log_ticks_read_whole_numbers(figure, name)


def test_interpolation_row_titles_sit_between_the_strips():
    """Each run's title needs its line of height between its strip and the strip above (subplot titles are drawn
    just above their panel: with a few pixels between rows they printed over the strip above)."""
    from dashboard.interpolation import strips_figure

    for rows, frames in ((2, 8), (4, 8), (6, 16)):
        strips = [(f"run {i} (VAE)", torch.rand(frames, 1, 28, 28)) for i in range(rows)]
        figure = strips_figure(strips, frames, "Interpolation (slerp, test0 50)")
        plot_px = figure.layout.height - figure.layout.margin.t - figure.layout.margin.b
        domains = sorted(tuple(figure.layout[name].domain) for name in figure.layout if name.startswith("yaxis"))
        assert len(domains) == rows
        title_px = 1.2 * max(annotation.font.size or 16 for annotation in figure.layout.annotations)
        for lower, upper in zip(domains, domains[1:]):
            assert (upper[0] - lower[1]) * plot_px >= title_px, (rows, frames)
        assert (1 - domains[-1][1]) * plot_px + figure.layout.margin.t >= title_px  # the first row's title too


def test_image_panel_titles_fit_their_columns():
    """The nearest-neighbour gallery's run titles ("cdcgan-mnist5k (Conditional DCGAN)") ran into each other over
    narrow panels: each subtitle fits within its column."""
    from evaluation.figures import image_panels

    labels = ["ae-mnist5k (Autoencoder)", "cdcgan-mnist5k (Conditional DCGAN)", "cvae-mnist5k (Conditional VAE, β=1)"]
    panels = [(label, np.zeros((8 * 30, 4 * 30), np.uint8)) for label in labels * 2]
    figure = image_panels(panels, "Samples beside their nearest training images", columns=4)
    plot_px = figure.layout.width - figure.layout.margin.l - figure.layout.margin.r
    domains = {tuple(figure.layout[name].domain) for name in figure.layout if name.startswith("xaxis")}
    column_px = min(high - low for low, high in domains) * plot_px + 0.02 * plot_px  # the panel and one gap
    for annotation in figure.layout.annotations:
        assert text_width(annotation.text, annotation.font.size or 16) <= column_px, annotation.text


# --- the interpolation's default pair -----------------------------------------------------------------------


def test_interpolation_default_pair_is_two_different_digits(tmp_path):
    """mnist5k's test split is sorted by class (its first 50 images are zeros): the default pair must still be
    two different digits, the same for every browser session."""
    from dashboard.interpolation import default_pair
    from dashboard.state import Run, run_dataset

    run = Run("v", tmp_path, {"dataset": "mnist5k", "model": "vae", "model_config": {}})
    first, second = default_pair(run)
    labels = run_dataset(run).test.labels
    assert first != second and int(labels[first]) != int(labels[second])
    assert (first, second) == default_pair(run) == (0, int((labels != labels[0]).nonzero()[0]))


def test_fid_bar_labels_read_as_the_metric_table_rounds_them():
    """A bar labelled "12.5" beside a table cell "12.46" reads as two different results."""
    from evaluation.charts import fid_figure
    from evaluation.report import to_markdown

    rows = [{"run": "a", "fid": 12.456, "n_fake": 500}, {"run": "b", "fid": 123.456, "n_fake": 500}]
    labels = list(fid_figure(rows).data[0].text)
    assert labels == ["12.46", "123.46"]
    table = to_markdown(rows)
    assert all(label in table for label in labels)


def test_fid_against_n_says_its_x_is_the_effective_n_of_samples_and_real_images():
    """The curve's points sit at 2 / (1/n samples + 1/n real): 5 000 samples against 4 500 real images at 4 737,
    not at 5 000 — the axis must say so, or a reader takes 4 737 for a sample count."""
    from evaluation.charts import fid_curve_figure
    from evaluation.fid import effective_n

    assert effective_n(1000, 1000) == 1000 and round(effective_n(5000, 4500)) == 4737
    curve = [{"n": n, "fid": 10 / n**0.5} for n in (500, 1000, 2000)] + [{"n": 4737, "fid": 0.2}]
    figure = fid_curve_figure([{"run": "a", "fid_curve": curve, "n_fake": 5000, "n_real": 4500}])
    assert list(figure.data[0].x) == [500, 1000, 2000, 4737]
    assert figure.layout.xaxis.title.text.startswith("effective n = 2 / (1/n samples + 1/n real)")
