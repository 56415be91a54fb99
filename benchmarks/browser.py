"""Driving the dashboard in a real browser: `streamlit run app.py` on a free localhost port and Debian's
Chromium through Playwright. Shared by the browser benchmark, the real-browser test and the README screenshots.

Tabs count their runs when ``GENLAB_RENDER_COUNTS=1`` (a caption "render count TITLE: N" at their top and
"charts in TITLE: K" at their end), which is how a script knows a tab has finished rendering (its K charts drawn)
and whether a change re-ran it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from dashboard.tabs import TAB_TITLES  # noqa: F401  (re-exported for the browser benchmark and test)

ROOT = Path(__file__).resolve().parents[1]
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
STARTUP_S = 90
RENDER_MS = 120_000
# The open tab TITLE is drawn when its script run has ended ("charts in TITLE: K" is its last caption), the app is
# idle, no element is still a loading skeleton or left over from the previous run (stale), K plotly charts have their
# SVG (plotly.js is loaded on a page's first chart and draws after the run has ended) and every image has arrived.
# Gives its render count. Checked on every animation frame with plain DOM queries (a Playwright text locator re-reads
# the whole page's text each time).
TAB_DRAWN = """(title) => {
  const captions = [...document.querySelectorAll('[role=tabpanel] [data-testid=stCaptionContainer]')]
    .map(e => e.textContent);
  const value = (prefix) => {
    const found = captions.find(t => t.startsWith(prefix));
    return found === undefined ? null : Number(found.slice(prefix.length));
  };
  const count = value(`render count ${title}: `), charts = value(`charts in ${title}: `);
  if (count === null || charts === null) return false;
  if (document.querySelector('[data-testid=stStatusWidget], [role=tabpanel] [data-testid=stSkeleton]')) return false;
  // a fragment's re-run keeps its old elements on screen (marked stale) until the script replaces them
  if (document.querySelector('[role=tabpanel] [data-stale=true]')) return false;
  const drawn = [...document.querySelectorAll('[role=tabpanel] [data-testid=stPlotlyChart]')]
    .filter(c => c.querySelector('.main-svg')).length;
  if (drawn < charts || ![...document.querySelectorAll('[role=tabpanel] img')].every(i => i.complete)) return false;
  return count;
}"""
NEXT_FRAME = "() => new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)))"
LOADED_IMAGES = "[...document.querySelectorAll('[role=tabpanel] img')].filter(i => i.complete && i.naturalWidth > 0)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(checkpoints: Path, log_path: Path, extra_env: dict | None = None):
    """Yield the URL of ``streamlit run app.py`` serving ``checkpoints`` (with render counters on), the
    monotonic time the process was started and the time its health check first answered; stop it afterwards."""
    from dashboard.state import CHECKPOINTS_ENV, RENDER_COUNTS_ENV

    port = free_port()
    env = {**os.environ, CHECKPOINTS_ENV: str(checkpoints), RENDER_COUNTS_ENV: "1", **(extra_env or {})}
    command = [
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
    ]
    with open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() - started > STARTUP_S:
                    raise RuntimeError(f"streamlit did not come up: {Path(log_path).read_text()[-2000:]}")
                time.sleep(0.1)
            yield url, started, time.monotonic()
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def wait_until_drawn(page, title: str) -> int:
    """Until the open tab ``title`` is drawn (``TAB_DRAWN``), then one more frame; its render count."""
    count = page.wait_for_function(TAB_DRAWN, arg=title, polling="raf", timeout=RENDER_MS).json_value()
    page.evaluate(NEXT_FRAME)
    return count


def tab_position(page, title: str) -> tuple[float, float]:
    """The centre of tab ``title``'s button, scrolled into view: found before a timed click, so that the time
    holds the dashboard's answer and not the search (Playwright's locator click looks the button up by its
    accessible name over the whole page and waits for two frames of stable layout: 0.03-0.1 s here)."""
    button = page.get_by_role("tab", name=title, exact=True)
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def open_tab(page, title: str, position: tuple[float, float] | None = None) -> int:
    """Click a tab (real mouse events at its ``position``, found first if not given) and wait until it is drawn;
    its render count."""
    page.mouse.click(*(position or tab_position(page, title)))
    return wait_until_drawn(page, title)


def wait_for_sample_grids(page, count: int) -> None:
    page.wait_for_function(f"() => {LOADED_IMAGES}.length >= {count}", timeout=RENDER_MS)


def sample_sources(page) -> list[str]:
    return page.eval_on_selector_all("[role=tabpanel] img", "imgs => imgs.map(i => i.src)")


def set_seed(page, seed: int, old_sources: list[str], count: int) -> None:
    """Type a new seed in the sidebar and wait until the first ``count`` grids are new and loaded."""
    box = page.locator(".st-key-seed input")
    box.fill(str(seed))
    box.press("Enter")
    page.wait_for_function(
        f"(old) => {{ const now = {LOADED_IMAGES}.map(i => i.src);"
        f" return now.length >= {count} && now.slice(0, {count}).every((src, i) => src !== old[i]); }}",
        arg=old_sources,
        timeout=RENDER_MS,
    )
