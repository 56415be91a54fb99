"""Real-browser test: `streamlit run app.py` on a free localhost port, driven by Debian's chromium via Playwright.

Skips when chromium is missing, except with REQUIRE_BROWSER_TEST=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.state import CHECKPOINTS_ENV

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
STARTUP_S = 90
RENDER_MS = 120_000


def require_browser() -> None:
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER_TEST") == "1":
        pytest.fail(message + " but REQUIRE_BROWSER_TEST=1 makes this test mandatory")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(dashboard_runs, tmp_path):
    port = free_port()
    log = open(tmp_path / "streamlit.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env={**os.environ, CHECKPOINTS_ENV: str(dashboard_runs)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not come up: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_sample_images_render_and_tabs_switch(server):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            samples = page.locator('[data-testid="stTabs"] [role="tabpanel"]').first.locator("img")
            expect(samples).to_have_count(4, timeout=RENDER_MS)
            page.wait_for_function(
                "() => [...document.querySelectorAll('[role=tabpanel] img')].filter(i => i.naturalWidth > 0)"
                ".length >= 4",
                timeout=RENDER_MS,
            )
            assert page.get_by_text("Traceback").count() == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard-samples.png"), full_page=True)

            page.get_by_role("tab", name="Metrics").click()
            expect(page.get_by_text("Training curves", exact=True)).to_be_visible(timeout=RENDER_MS)
            expect(page.locator(".js-plotly-plot:visible").first).to_be_visible(timeout=RENDER_MS)
            page.screenshot(path=str(ARTIFACTS / "dashboard-metrics.png"), full_page=True)

            page.get_by_role("tab", name="Interpolation").click()
            expect(page.get_by_text("Animated GIF").first).to_be_visible(timeout=RENDER_MS)
            page.screenshot(path=str(ARTIFACTS / "dashboard-interpolation.png"), full_page=True)
            assert page.get_by_text("Traceback").count() == 0
        finally:
            browser.close()
