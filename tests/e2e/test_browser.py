"""Real-browser test: `streamlit run app.py` on a free localhost port, driven by Debian's chromium via Playwright.

Skips when chromium is missing, except with REQUIRE_BROWSER_TEST=1 (CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # no Playwright: the browser tests skip or fail in require_browser's way
    PlaywrightTimeout = TimeoutError

from benchmarks.browser import (
    CHROMIUM,
    RENDER_MS,
    ROOT,
    TAB_DRAWN,
    TAB_TITLES,
    launch,
    open_tab,
    sample_sources,
    set_seed,
    streamlit_server,
    wait_for_sample_grids,
    wait_until_drawn,
)

ARTIFACTS = ROOT / "test-artifacts"


def require_browser() -> None:
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER_TEST") == "1":
        pytest.fail(message + " but REQUIRE_BROWSER_TEST=1 makes this test mandatory")
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(dashboard_runs, tmp_path_factory):
    """One server for the module, on a copy of the tiny runs (the tour trains runs into it)."""
    require_browser()
    root = tmp_path_factory.mktemp("browser")
    checkpoints = shutil.copytree(dashboard_runs, root / "checkpoints")
    with streamlit_server(checkpoints, root / "streamlit.log") as (url, _started, _ready):
        yield url, checkpoints


@contextmanager
def dashboard_page(url: str, width: int = 1400):
    """A Chromium page on the dashboard at ``url``, ``width`` px wide, once the first sample grids are drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000}, accept_downloads=True)
            page.goto(url)
            wait_for_sample_grids(page, 4)
            yield page
        finally:
            browser.close()


def assert_no_error(page, where: str) -> None:
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{where}: {errors.first.inner_text()}"
    assert page.get_by_text("Traceback").count() == 0, where


def download(page, selector: str, path: Path) -> bytes:
    with page.expect_download(timeout=RENDER_MS) as info:
        page.locator(f"{selector}:visible").first.click()
    info.value.save_as(path)
    return path.read_bytes()


def test_every_tab_renders_a_seed_change_reruns_samples_only_and_figures_download(server, tmp_path):
    url, _checkpoints = server
    ARTIFACTS.mkdir(exist_ok=True)
    with dashboard_page(url) as page:
        page.screenshot(path=str(ARTIFACTS / "dashboard-samples.png"), full_page=True)
        counts = {}
        for title in TAB_TITLES:
            counts[title] = open_tab(page, title)
            assert_no_error(page, title)
        # a seed change re-draws the sample grids and re-runs the Samples tab alone
        samples_before = open_tab(page, "Samples")
        set_seed(page, 3, sample_sources(page), 4)
        page.get_by_text(f"render count Samples: {samples_before + 1}").wait_for(timeout=RENDER_MS)
        assert open_tab(page, "Metrics") == counts["Metrics"] + 1  # once for being opened, not for the seed
        # report figures: the labelled samples figure as PNG and PDF
        open_tab(page, "Samples")
        png = download(page, ".st-key-samples-figure-png button", tmp_path / "samples.png")
        pdf = download(page, ".st-key-samples-figure-pdf button", tmp_path / "samples.pdf")
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and pdf.startswith(b"%PDF-")
        # the report zip: figures as PNG and PDF, the page-width LaTeX table, the methods paragraph
        open_tab(page, "Findings & report")
        page.locator(".st-key-report_build button").click()
        page.locator(".st-key-report_download button").wait_for(timeout=RENDER_MS)
        download(page, ".st-key-report_download button", tmp_path / "report.zip")
        names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
        assert "tables/summary.tex" in names and "methods.md" in names
        assert any(n.startswith("figures/") and n.endswith(".png") for n in names)
        assert any(n.startswith("figures/") and n.endswith(".pdf") for n in names)
        page.screenshot(path=str(ARTIFACTS / "dashboard-report.png"), full_page=True)
        assert_no_error(page, "after the downloads")


# What a user sees of the page: its text (without the test-mode render counters), every picture (its address, which
# names its bytes, and its size on screen) and every chart (a hash of its drawing). A control that changes
# none of these did nothing visible.
VIEW = """() => {
  const main = document.querySelector('[data-testid=stMain]');
  const hash = (text) => {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
    return h;
  };
  const text = main.innerText.split('\\n').filter(l => !/^(render count|charts in) /.test(l)).join('\\n');
  const images = [...main.querySelectorAll('[role=tabpanel] img')].map(i => i.src);
  const sizes = [...main.querySelectorAll('[role=tabpanel] img')].map(i => Math.round(i.getBoundingClientRect().width));
  const charts = [...main.querySelectorAll('.js-plotly-plot')]
    .map(c => hash([...c.querySelectorAll('.main-svg')].map(svg => svg.innerHTML).join('')));
  return {text, images, sizes, charts};
}"""
SETTLE_MS = 1000  # a slider can send its value twice (on the key and on release): two re-runs
RERUN_STARTED = (
    f"([title, before]) => !!document.querySelector('[data-testid=stStatusWidget]') || ({TAB_DRAWN})(title) > before"
)
# A control's label cut short: its text is wider than its box (Streamlit cuts a label with an ellipsis), or a
# button sticks out of its column.
CUT_CONTROLS = """() => {
  const shown = (e) => e.offsetParent !== null;
  const textWidth = (e) => {
    const range = document.createRange();
    range.selectNodeContents(e);
    return range.getBoundingClientRect().width;
  };
  const cut = [...document.querySelectorAll('[data-testid=stMain] .stMarkdownEllipsis')].filter(shown)
    .filter(e => textWidth(e) > e.clientWidth + 1 || e.scrollWidth > e.clientWidth).map(e => e.innerText);
  const buttons = [...document.querySelectorAll('[data-testid=stMain] button')].filter(shown);
  const narrow = buttons.filter(b => b.scrollWidth > b.clientWidth).map(b => b.innerText);
  const outside = buttons.filter(b => {
    const column = b.closest('[data-testid=stColumn]');
    if (!column) return false;
    const r = b.getBoundingClientRect(), c = column.getBoundingClientRect();
    return r.left < c.left - 1 || r.right > c.right + 1;
  }).map(b => b.innerText);
  return [...cut, ...narrow, ...outside];
}"""
# Chart titles that stick out of their chart
CLIPPED_TITLES = """() => [...document.querySelectorAll('[role=tabpanel] .js-plotly-plot')].flatMap(chart => {
  const box = chart.querySelector('.main-svg').getBoundingClientRect();
  return [...chart.querySelectorAll('.gtitle, .g-xtitle text, .g-ytitle text, .g-y2title text')].filter(t => {
    const r = t.getBoundingClientRect();
    return r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1;
  }).map(t => t.textContent);
})"""


def view(page) -> dict:
    return page.evaluate(VIEW)


def act(page, title: str, action, what: str) -> tuple[dict, dict]:
    """Do ``action`` (a control change) on the open tab ``title``, wait until the tab has re-run and is drawn
    again, check that no error is shown; the view before and after."""
    count = wait_until_drawn(page, title)
    before = view(page)
    action()
    # a re-run starts; if none does (the click may have landed on a control that a late re-run was replacing,
    # or a late re-run already took it), a radio or a part's tab is clicked again
    for _attempt in range(2 if getattr(action, "idempotent", False) else 1):
        try:
            page.wait_for_function(RERUN_STARTED, arg=[title, count], polling="raf", timeout=10_000)
            break
        except PlaywrightTimeout:
            if getattr(action, "idempotent", False):
                action()
    while True:  # until it settles (a control may re-run its tab, then the whole page)
        count = page.wait_for_function(TAB_DRAWN, arg=title, polling="raf", timeout=2 * RENDER_MS).json_value()
        page.wait_for_timeout(SETTLE_MS)
        if page.evaluate(f"(title) => ({TAB_DRAWN})(title)", title) == count:
            break
    assert_no_error(page, f"{title}, {what}")
    return before, view(page)


def changes(page, title: str, action, what: str, part: str | None = None) -> dict:
    """``action`` changes what the user sees (``part``: the pictures, charts, text or sizes, or any of them)."""
    before, after = act(page, title, action, what)
    parts = [part] if part else list(before)
    assert any(before[p] != after[p] for p in parts), f"{title}: {what} changed nothing visible ({'/'.join(parts)})"
    return after


def widget(page, key: str):
    return page.locator(f".st-key-{key}")


def slide(page, key: str, steps: int = 1):
    def move():
        thumb = widget(page, key).get_by_role("slider")
        start = thumb.input_value()
        for _attempt in range(3):  # a key press can land on a slider that a late re-run is replacing
            thumb.focus()
            for _ in range(abs(steps)):
                thumb.press("ArrowRight" if steps > 0 else "ArrowLeft")
            try:
                page.wait_for_function("([e, v]) => e.value !== v", arg=[thumb.element_handle(), start], timeout=3000)
                return
            except PlaywrightTimeout:
                pass

    return move


def idempotent(action):
    action.idempotent = True
    return action


def radio(page, key: str, option: str):
    return idempotent(lambda: widget(page, key).get_by_text(option, exact=True).click())


def type_number(page, key: str, value: int):
    def enter():
        box = widget(page, key).locator("input")
        box.fill(str(value))
        box.press("Enter")

    return enter


def click(locator):
    return lambda: locator.click()


def section(page, name: str):
    return idempotent(click(page.get_by_role("tab", name=name, exact=True)))


def expander_opens(page, label: str) -> None:
    """A plain expander (no re-run): its text shows once clicked."""
    box = page.locator("[data-testid=stExpander]", has_text=label).first
    box.locator("summary").click()
    page.wait_for_function("(d) => d.open", arg=box.locator("details").element_handle(), timeout=RENDER_MS)
    assert box.locator("[data-testid=stExpanderDetails]").inner_text().strip(), f"{label}: opened empty"


def tour_samples(page, tmp_path) -> None:
    title = "Samples"
    open_tab(page, title)
    grids = view(page)["images"]
    assert len(grids) == 4
    # Regenerate: new latents for every grid
    after = changes(page, title, click(page.get_by_role("button", name="Regenerate")), "Regenerate", "images")
    assert all(old != new for old, new in zip(grids, after["images"])), "Regenerate left a grid as it was"
    changes(page, title, slide(page, "samples_per_row"), "grids per row", "sizes")
    # the sidebar's drawing controls re-draw the grids
    changes(page, title, slide(page, "n_samples", -1), "samples per grid", "images")
    changes(page, title, slide(page, "scale"), "image scale", "images")
    # a run's PNG is the picture shown
    shown = page.evaluate("() => document.querySelector('[role=tabpanel] img').src")
    png = download(page, ".st-key-samples-png-vae-mnist5k button", tmp_path / "grid.png")
    assert png == page.request.get(shown).body(), "a run's PNG download is not the grid shown"
    expander_opens(page, "Why do the models' samples differ?")
    # the sampler: without the GAN (no encoder) the fitted samplers are offered; each changes every grid, or
    # says why not, and a sampler that fails for one run never blanks the others' grids
    before = changes(page, title, lambda: drop_last_option(page, "runs"), "removing a run in the sidebar", "images")
    assert len(before["images"]) == 3
    for sampler in ("gmm",):  # two-stage fits a network per run first: minutes on a CPU (its fit is unit-tested)
        after = changes(
            page, title, click(widget(page, "samples_sampler").get_by_role("radio", name=sampler)), sampler, "text"
        )
        assert len(after["images"]) == 3, f"{sampler}: a run's grid is missing"
        explained = page.locator("[role=tabpanel] [data-testid=stAlertContentInfo]").count()
        # (the tiny test runs draw near-uniform grey: two samplers may give one run the same picture)
        assert explained or any(a != b for a, b in zip(before["images"], after["images"])), (
            f"the {sampler} sampler left every grid as it was and says nothing about why"
        )


def drop_last_option(page, key: str) -> None:
    """Remove the last chosen option of the multiselect ``key``, as a keyboard user does."""
    box = widget(page, key).locator("input")
    box.click()
    box.press("Backspace")
    page.keyboard.press("Escape")


def tour_interpolation(page, tmp_path) -> None:
    title = "Interpolation"
    open_tab(page, title)
    changes(page, title, radio(page, "interp_path", "linear"), "path", "images")
    changes(page, title, slide(page, "interp_frames"), "frames", "images")
    changes(page, title, slide(page, "interp_frame"), "frame", "images")
    changes(page, title, radio(page, "interp_source", "two real test images"), "endpoints", "images")
    changes(page, title, type_number(page, "interp_a", 7), "first test image", "images")
    changes(page, title, type_number(page, "interp_b", 9), "second test image", "images")
    gif = download(page, "[class*=st-key-interp-gif-] button", tmp_path / "strip.gif")
    assert gif.startswith(b"GIF8")
    expander_opens(page, "What makes a latent space smooth?")


def tour_anatomy(page) -> None:
    title = "VAE anatomy"
    open_tab(page, title)
    changes(page, title, type_number(page, "anatomy_image", 5), "test image", "images")


def tour_reconstruction(page) -> None:
    title = "Reconstruction"
    open_tab(page, title)
    changes(page, title, slide(page, "recon_count"), "images", "images")
    changes(page, title, section(page, "Denoising"), "the denoising part", "images")
    changes(page, title, slide(page, "denoise_sigma"), "noise level", "images")
    changes(page, title, section(page, "Anomaly detection"), "the anomaly part", "charts")
    changes(page, title, radio(page, "ood_kind", "test digits with black and white swapped"), "odd inputs", "charts")
    changes(page, title, section(page, "Compression"), "the compression part", "text")
    compute = click(widget(page, "compression_button").locator("button"))
    after = changes(page, title, compute, "compute the compression curves", "charts")
    assert after["charts"], "no compression chart after the click"
    expander_opens(page, "What these experiments show")


def test_every_control_of_the_default_tour_has_a_visible_effect(server, tmp_path):
    url, checkpoints = server
    with dashboard_page(url) as page:
        tour_samples(page, tmp_path)
        tour_interpolation(page, tmp_path)
        tour_anatomy(page)
        tour_reconstruction(page)
        tour_latent(page)
        tour_sanity(page)
        trained = tour_train(page, checkpoints)
        tour_metrics(page, trained)
        tour_report(page, tmp_path)
        tour_sweeps(page)


def tour_latent(page) -> None:
    title = "Latent space"
    open_tab(page, title)
    changes(page, title, radio(page, "latent_method", "t-SNE"), "t-SNE projection", "charts")
    changes(page, title, click(widget(page, "latent_thumbs").locator("label")), "images on the map", "charts")
    changes(page, title, section(page, "Traversals and KL per dimension"), "the traversals part", "charts")
    changes(page, title, lambda: drop_last_option(page, "latent-dims-vae-mnist5k"), "one dimension fewer", "charts")
    expander_opens(page, "How to read these pictures")


def tour_sanity(page) -> None:
    title = "Sanity & copying"
    open_tab(page, title)
    choose(page, title, "sanity_n", "2000")
    changes(page, title, choose_action(page, "sanity_n", "1000"), "reference size", "text")
    after = changes(
        page,
        title,
        click(page.get_by_role("button", name="Compute the sanity panel on mnist5k (n = 1000)")),
        "compute the panel",
        "text",
    )
    from evaluation.sanity import CASES

    assert all(case.name in after["text"] for case in CASES), "the panel does not list every case"
    changes(page, title, click(widget(page, "gallery_on").locator("label")), "the nearest-neighbour gallery", "charts")


def choose_action(page, key: str, option):
    """Pick ``option`` (its text, or a pattern: the first option it matches) of the select box ``key``."""

    def pick():
        for _attempt in range(3):  # the list may close again when a late re-run replaces the box
            widget(page, key).get_by_role("button", name="Open").click()
            try:
                page.get_by_role("option", name=option, exact=isinstance(option, str)).first.click(timeout=5000)
                return
            except PlaywrightTimeout:
                page.keyboard.press("Escape")
        raise AssertionError(f"{key}: option {option} could not be chosen")

    return pick


def choose(page, title: str, key: str, option: str) -> dict:
    return act(page, title, choose_action(page, key, option), f"{key} = {option}")[1]


def run_info(run_dir: Path) -> dict:
    from generators.checkpoints import read_run_info

    return read_run_info(run_dir)


def new_run(checkpoints: Path, before: set[str], timeout_s: float = 300) -> Path:
    """The run folder that appeared since ``before``, once its weights are written."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        made = [p for p in checkpoints.iterdir() if p.name not in before and (p / "model.safetensors").is_file()]
        if made:
            return made[0]
        time.sleep(0.5)
    raise AssertionError("no run folder appeared after Start training")


def tour_train(page, checkpoints: Path) -> str:
    """Every control of the form reaches the run it trains; the finished run joins the comparison, gets its
    metrics and trains further. The run's name."""
    title = "Train"
    open_tab(page, title)
    choose(page, title, "train_model", "Autoencoder")
    changes(page, title, radio(page, "train_budget", "minutes"), "a budget in minutes", "text")
    changes(page, title, radio(page, "train_budget", "steps"), "a budget in steps", "text")
    act(page, title, type_number(page, "train_seed", 3), "seed")
    act(page, title, type_number(page, "train_amount_steps_ae_mnist5k", 10), "steps")
    act(page, title, type_number(page, "train_latent_ae_mnist5k", 4), "latent size")
    choose(page, title, "train_precision", "bf16")
    before = {p.name for p in checkpoints.iterdir()}
    widget(page, "train_start").locator("button").click()
    run_dir = new_run(checkpoints, before)
    finished = page.get_by_text(f"{run_dir.name} finished")
    finished.wait_for(timeout=RENDER_MS)
    info = run_info(run_dir)
    assert (info["model"], info["seed"], info["step"]) == ("ae", 3, 10), info
    assert info["model_config"]["latent_dim"] == 4 and info["train_config"]["precision"] == "bf16", info
    # Add to the comparison: the run is selected in the sidebar and drawn in the Samples tab
    chosen = widget(page, "runs")
    compared = chosen.inner_text()
    page.get_by_role("button", name="Add to the comparison").click()
    chosen.get_by_text(run_dir.name).wait_for(timeout=RENDER_MS)
    assert all(name in chosen.inner_text() for name in ("vae-mnist5k", "vae-beta4-mnist5k")), (
        f"adding a run dropped the others: {compared!r} became {chosen.inner_text()!r}"
    )
    # its metrics
    page.get_by_role("button", name="Compute its metrics (n = 1000)").click()
    page.get_by_text(f"Metrics of {run_dir.name} stored").wait_for(timeout=2 * RENDER_MS)
    rows = json.loads((run_dir / "metrics.json").read_text())
    assert any(key.startswith("n=1000|") for key in rows), list(rows)
    # ten more steps
    more = page.locator(f".st-key-more-{run_dir.name} input")
    more.fill("10")
    more.press("Enter")
    page.get_by_role("button", name="Resume it for more steps").click()
    page.wait_for_function(
        "(name) => document.body.innerText.includes(name + ' finished') && document.body.innerText.includes('20')",
        arg=run_dir.name,
        timeout=RENDER_MS,
    )
    page.get_by_text(f"{run_dir.name} finished").wait_for(timeout=RENDER_MS)
    wait_for_step(run_dir, 20)
    assert_no_error(page, "Train")
    cancel_a_long_run_on_sprites(page, checkpoints)
    return run_dir.name


def cancel_a_long_run_on_sprites(page, checkpoints: Path) -> None:
    """The data set box reaches the run; Cancel stops a long run, which keeps its last checkpoint."""
    title = "Train"
    choose(page, title, "train_dataset", "sprites")
    act(page, title, type_number(page, "train_amount_steps_ae_sprites", 100_000), "a long run")
    before = {p.name for p in checkpoints.iterdir()}
    widget(page, "train_start").locator("button").click()
    page.get_by_text(re.compile(r": step \d+ of 100000")).wait_for(timeout=RENDER_MS)
    page.get_by_role("button", name="Cancel (keeps a checkpoint)").click()
    page.get_by_text(re.compile(r"was cancelled; its last checkpoint was kept")).wait_for(timeout=RENDER_MS)
    (run_dir,) = [p for p in checkpoints.iterdir() if p.name not in before]
    info = run_info(run_dir)
    assert info["dataset"] == "sprites" and 0 < info["step"] < 100_000, info
    assert_no_error(page, "Train, after Cancel")


def wait_for_step(run_dir: Path, step: int, timeout_s: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while run_info(run_dir)["step"] != step:
        assert time.monotonic() < deadline, f"{run_dir.name} did not reach step {step}"
        time.sleep(0.5)


def tour_metrics(page, trained: str) -> None:
    title = "Metrics"
    open_tab(page, title)
    # the run trained in the Train tab was scored, then trained further: its rows are not shown as its metrics
    assert f"Stored metrics of {trained} were computed from older weights" in view(page)["text"]
    # Compute at n = 500: every selected run gets a row there (the trained one too), and the page shows n = 500
    thumb = widget(page, "metrics_n").get_by_role("slider")
    thumb.focus()
    while thumb.get_attribute("aria-valuetext") != "500":
        thumb.press("ArrowLeft")
    form = page.locator("[data-testid=stForm]")
    after = changes(page, title, click(form.get_by_role("button", name="Compute")), "Compute at n = 500", "text")
    assert "showing n = 500" in after["text"] and "No metrics at n = 500" not in after["text"], after["text"][:800]
    changes(page, title, section(page, "Classes, sharpness, FID against n"), "the second chart part", "charts")
    changes(page, title, section(page, "Training curves"), "the training curves", "charts")
    changes(page, title, section(page, "What each run was given"), "what each run was given", "text")
    changes(page, title, opens(page, "Each run's full configuration"), "each run's configuration", "text")
    changes(page, title, opens(page, "Every column of every row at n = 500"), "the full table", "text")
    after = changes(page, title, section(page, "Augmentation"), "the augmentation part", "text")
    assert "Select a class-conditional run" in after["text"]  # the tour's runs are all unconditional
    after = changes(page, title, choose_action(page, "metrics_view_n", "100"), "rows at n = 100", "text")
    assert "Headline metrics at n = 100" in after["text"]
    expander_opens(page, "What the metrics mean")


def opens(page, label: str):
    """Open the expander ``label`` whose contents are drawn only once it is open (a re-run)."""
    return click(page.locator("[data-testid=stExpander]", has_text=label).first.locator("summary"))


def tour_report(page, tmp_path) -> None:
    """The findings file says what the page says; the zip holds the sanity panel computed in the tour."""
    title = "Findings & report"
    open_tab(page, title)
    shown = view(page)["text"]
    findings = download(page, ".st-key-findings_download button", tmp_path / "findings.md").decode()
    verdicts = re.findall(r"^- \*\*(.+?)\*\* — \*(.+?)\*", findings, flags=re.MULTILINE)
    assert len(verdicts) >= 5, findings
    for claim, verdict in verdicts:
        assert f"{claim} — {verdict}" in shown, f"the page does not say '{claim}' is {verdict}"
    after = changes(page, title, click(widget(page, "report_build").locator("button")), "build the zip", "text")
    assert "The report is ready" in after["text"]
    download(page, ".st-key-report_download button", tmp_path / "tour-report.zip")
    with zipfile.ZipFile(tmp_path / "tour-report.zip") as bundle:
        assert "tables/sanity.md" in bundle.namelist(), bundle.namelist()
        assert "n = 1000" in bundle.read("README.md").decode()


# the x values of every trace of every chart on the open tab (as plotly drew them: decoded from binary arrays)
CHART_XS = """() => [...document.querySelectorAll('[role=tabpanel] .js-plotly-plot')]
  .map(chart => (chart._fullData || []).map(trace => Array.from(trace.x || [])))"""


def tour_sweeps(page) -> None:
    """The β sweep of the tiny VAEs (β 1 and 4): train the missing β = 0.5, score the three, and every control."""
    title = "Sweeps"
    open_tab(page, title)
    shown = view(page)["text"]
    assert "Reused: β=1 → vae-mnist5k, β=4 → vae-beta4-mnist5k" in shown, shown[:1000]
    page.get_by_role("button", name=re.compile(r"^Train 1 VAE run\(s\) of \d+ steps$")).click()
    page.get_by_text("Every chosen β already has a run of this recipe").wait_for(timeout=RENDER_MS)
    compute = click(widget(page, "sweep_metrics").locator("button"))
    after = changes(page, title, compute, "compute the metrics", "charts")
    assert "needs metrics at one shared n" not in after["text"]
    assert any(sorted(set(x)) == [0.5, 1, 4] for chart in page.evaluate(CHART_XS) for x in chart), (
        f"no chart draws the three β: {page.evaluate(CHART_XS)}"
    )
    changes(page, title, choose_action(page, "sweep_metric_beta", "precision"), "another metric", "charts")
    changes(page, title, lambda: drop_last_option(page, "sweep_betas"), "one β fewer", "charts")
    changes(page, title, choose_action(page, "sweep_recipe", re.compile("^new: ")), "a new sweep", "text")
    expander_opens(page, "The β trade-off")


def test_narrow_screen_shows_every_tab_and_whole_controls_without_the_sidebar(server):
    url, _checkpoints = server

    with dashboard_page(url, 800) as page:
        page.wait_for_function(
            "() => document.querySelector('[data-testid=stSidebar]').getBoundingClientRect().right <= 0",
            timeout=10_000,
        )
        for title in TAB_TITLES:
            tab = page.get_by_role("tab", name=title, exact=True)
            box = tab.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 800, f"tab {title} is out of sight"
            tab.click()
            wait_until_drawn(page, title)
            assert_no_error(page, f"{title} at 800 px")
            assert page.evaluate(CUT_CONTROLS) == [], f"{title} at 800 px: controls cut short"
            assert page.evaluate(CLIPPED_TITLES) == [], f"{title} at 800 px: chart titles clipped"
            if title == "Samples":
                page.screenshot(path=str(ARTIFACTS / "dashboard-800px.png"))
