"""Re-make the README screenshots: the dashboard on the committed default runs, in Debian's Chromium.

.venv/bin/python scripts/screenshots.py        # writes docs/screenshots/<tab>.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.browser import ROOT, launch, streamlit_server, wait_for_sample_grids  # noqa: E402

SHOTS = {
    "Samples": "samples",
    "Interpolation": "interpolation",
    "Latent space": "latent-space",
    "VAE anatomy": "vae-anatomy",
    "Metrics": "metrics",
    "Findings & report": "findings",
}
OUT = ROOT / "docs" / "screenshots"


def settle(page, tab: str) -> None:
    """Click the tab (or a tab's part) ``tab`` and wait until its charts are drawn."""
    page.get_by_role("tab", name=tab, exact=True).click()
    page.wait_for_timeout(500)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=120_000)
    page.wait_for_function(  # plotly draws after the script has finished
        "() => !document.querySelector('[data-testid=stSkeleton]') && [...document.querySelectorAll("
        "'[data-testid=stPlotlyChart]')].every(c => c.querySelector('.main-svg'))",
        timeout=120_000,
    )
    page.wait_for_timeout(500)


def shoot(page, tab: str, name: str, showing: str | None = None) -> None:
    """Screenshot the tab ``tab`` as ``name``.png, scrolled to the first chart whose text holds ``showing``."""
    settle(page, tab)
    if showing:
        page.locator("[data-testid=stPlotlyChart]", has_text=showing).first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"wrote {OUT / f'{name}.png'}")


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            no_counters = {"GENLAB_RENDER_COUNTS": "0"}
            with streamlit_server(ROOT / "checkpoints", Path(tmp) / "streamlit.log", no_counters) as (url, _, _):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url)
                wait_for_sample_grids(page, 4)
                for title, name in SHOTS.items():
                    shoot(page, title, name)
                # latent interpretability: the sprites runs' factor map and labelled traversals
                page.locator(".st-key-dataset").get_by_role("button", name="Open").click()
                page.get_by_role("option", name="sprites", exact=True).click()
                settle(page, "Latent space")
                shoot(page, "Traversals and KL per dimension", "latent-sprites", "what each dimension holds")
                shoot(page, "Traversals and KL per dimension", "traversals-sprites", "(VAE, β=4): latent traversals")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
