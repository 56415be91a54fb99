"""Responsiveness of the dashboard in a real browser, on the committed default runs (``--only browser``).

Start-up figures are medians over STARTS fresh servers; seed changes and tab switches are from the last one.

- browser_first_grid_s: from starting `streamlit run app.py` to the first four sample grids loaded in Chromium
  (``_after_ready_s``: from the server's first answer to its health check, i.e. after its warm-up);
- browser_all_tabs_s: from the same start until every tab has been opened and has rendered, charts drawn (and
  ``_after_ready_s``): the first grids' time plus each tab's, from the click on it to its drawn frame. The
  harness's own time between two tabs (finding the next tab's button, outside any click) is left out;
  ``browser_tour_wall_after_ready_s`` is the same tour by the wall clock, with it;
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
    tab_position,
    wait_for_sample_grids,
)

SEED_CHANGES = 5
TAB_SWITCHES = 8
STARTS = 3  # fresh server starts: the start-up figures are their medians (one start swings by seconds here)


def fresh_start(browser, log_path: Path, grids: int, interactions: bool) -> dict:
    """One fresh server and page: seconds to ready, first grids and every tab; then (``interactions``) the
    seed changes and tab switches."""
    with streamlit_server(ROOT / "checkpoints", log_path) as (url, started, ready):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        wait_for_sample_grids(page, grids)
        figures = {"server_ready": ready - started, "first_grid": time.monotonic() - started}
        figures["first_grid_after_ready"] = time.monotonic() - ready
        first_open = {}
        for title in TAB_TITLES[1:]:
            position = tab_position(page, title)
            start = time.monotonic()
            open_tab(page, title, position)
            first_open[title] = time.monotonic() - start
        tour = sum(first_open.values())
        figures["all_tabs"] = figures["first_grid"] + tour
        figures["all_tabs_after_ready"] = figures["first_grid_after_ready"] + tour
        figures["tour_wall_after_ready"] = time.monotonic() - ready  # with the harness's button lookups
        figures["first_open"] = {title: round(seconds, 2) for title, seconds in first_open.items()}
        if not interactions:
            return figures
        open_tab(page, "Samples")
        figures["seed_changes"] = []
        for seed in range(1, SEED_CHANGES + 1):
            old = sample_sources(page)
            start = time.monotonic()
            set_seed(page, seed, old, grids)
            figures["seed_changes"].append(round(time.monotonic() - start, 3))
        figures["switches"] = []
        for i in range(TAB_SWITCHES):
            title = ("Interpolation", "Samples")[i % 2]
            position = tab_position(page, title)
            start = time.monotonic()
            open_tab(page, title, position)
            figures["switches"].append(round(time.monotonic() - start, 3))
        return figures


def browser_figures() -> dict:
    if not CHROMIUM.is_file():
        return {"browser_first_grid_s": None, "browser_note": f"{CHROMIUM} is missing (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    from generators.default_runs import SELECTED_AT_START

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            starts = [
                fresh_start(browser, Path(tmp) / f"streamlit-{i}.log", len(SELECTED_AT_START), i == STARTS - 1)
                for i in range(STARTS)
            ]
        finally:
            browser.close()
    last = starts[-1]
    median = {key: round(statistics.median(s[key] for s in starts), 2) for key in starts[0] if key != "first_open"}
    return {
        **{f"browser_{key}_s": value for key, value in median.items()},
        "browser_seed_change_s": round(statistics.median(last["seed_changes"]), 3),
        "browser_tab_switch_s": round(statistics.median(last["switches"]), 3),
        "browser_samples": {
            "starts": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in s.items()} for s in starts],
        },
    }
