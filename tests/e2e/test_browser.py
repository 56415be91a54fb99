"""Real-browser test: `streamlit run app.py` on a free localhost port, driven by Debian's chromium via Playwright.

Skips when chromium is missing, except with REQUIRE_BROWSER_TEST=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from benchmarks.browser import (
    CHROMIUM,
    RENDER_MS,
    ROOT,
    TAB_TITLES,
    launch,
    open_tab,
    sample_sources,
    set_seed,
    streamlit_server,
    wait_for_sample_grids,
)

ARTIFACTS = ROOT / "test-artifacts"


def require_browser() -> None:
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER_TEST") == "1":
        pytest.fail(message + " but REQUIRE_BROWSER_TEST=1 makes this test mandatory")
    pytest.skip(message)


@pytest.fixture
def server(dashboard_runs, tmp_path):
    require_browser()
    with streamlit_server(dashboard_runs, tmp_path / "streamlit.log") as (url, _started, _ready):
        yield url


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
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.goto(server)
            wait_for_sample_grids(page, 4)
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
            download(page, ".st-key-report_download button", tmp_path / "report.zip")
            names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
            assert "tables/summary.tex" in names and "methods.md" in names
            assert any(n.startswith("figures/") and n.endswith(".png") for n in names)
            assert any(n.startswith("figures/") and n.endswith(".pdf") for n in names)
            page.screenshot(path=str(ARTIFACTS / "dashboard-report.png"), full_page=True)
            assert_no_error(page, "after the downloads")
        finally:
            browser.close()
