"""Responsiveness of the dashboard in a real browser, on the committed default runs (``--only browser``).

- browser_first_grid_s: from starting `streamlit run app.py` to the first four sample grids loaded in Chromium
  (``_after_ready_s``: from the server's first answer to its health check, i.e. after its warm-up);
- browser_all_tabs_s: from the same start until every tab has been opened and has rendered (and
  ``_after_ready_s``);
- browser_server_ready_s: from the start to the first answer (imports and the first page's warm-up);
- browser_seed_change_s: median over seed changes, from pressing Enter to all new grids loaded;
- browser_tab_switch_s: median over switches between tabs already visited, from the click to the tab rendered.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from .browser import (
    CHROMIUM,
    ROOT,
    TAB_TITLES,
    launch,
    open_tab,
    sample_sources,
    set_seed,
    streamlit_server,
    wait_for_sample_grids,
)

SEED_CHANGES = 5
TAB_SWITCHES = 8


def browser_figures() -> dict:
    if not CHROMIUM.is_file():
        return {"browser_first_grid_s": None, "browser_note": f"{CHROMIUM} is missing (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    from generators.default_runs import SELECTED_AT_START

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            with streamlit_server(ROOT / "checkpoints", Path(tmp) / "streamlit.log") as (url, started, ready):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                grids = len(SELECTED_AT_START)
                wait_for_sample_grids(page, grids)
                first_grid, after_ready = time.monotonic() - started, time.monotonic() - ready
                first_open = {}
                for title in TAB_TITLES[1:]:
                    start = time.monotonic()
                    open_tab(page, title)
                    first_open[title] = round(time.monotonic() - start, 2)
                all_tabs, all_tabs_after_ready = time.monotonic() - started, time.monotonic() - ready
                open_tab(page, "Samples")
                seed_changes = []
                for seed in range(1, SEED_CHANGES + 1):
                    old = sample_sources(page)
                    start = time.monotonic()
                    set_seed(page, seed, old, grids)
                    seed_changes.append(time.monotonic() - start)
                switches = []
                for i in range(TAB_SWITCHES):
                    title = ("Interpolation", "Samples")[i % 2]
                    start = time.monotonic()
                    open_tab(page, title)
                    switches.append(time.monotonic() - start)
        finally:
            browser.close()
    return {
        "browser_first_grid_s": round(first_grid, 2),
        "browser_first_grid_after_ready_s": round(after_ready, 2),
        "browser_all_tabs_s": round(all_tabs, 2),
        "browser_all_tabs_after_ready_s": round(all_tabs_after_ready, 2),
        "browser_server_ready_s": round(ready - started, 2),
        "browser_seed_change_s": round(statistics.median(seed_changes), 3),
        "browser_tab_switch_s": round(statistics.median(switches), 3),
        "browser_samples": {
            "first_open_s": first_open,
            "seed_changes_s": [round(s, 3) for s in seed_changes],
            "tab_switches_s": [round(s, 3) for s in switches],
        },
    }
