"""Server-start warm-up: the work every first page would otherwise wait for, done before anyone asks.

A browser's first page would pay for importing torch, torchvision, plotly and the tabs (seconds on a laptop
CPU), loading the models of the runs it opens on and drawing their grids; each other tab would then pay for
its own first computations. A tab module may define ``warm(selection)``: its default view's slow parts,
computed into Streamlit's caches (shared by every session). ``app.py`` runs the first tab's warm-up in the
server's lifespan, before it answers any request, and the other tabs' in a background thread (torch on half the
cores) once a first page has been served (so it does not compete with it for the CPU), while that page is being
looked at. A failure here is only logged: the page then does the same work itself and shows any error where it
belongs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from contextlib import asynccontextmanager, contextmanager

log = logging.getLogger("dashboard")
# warns once per cached call made outside a browser session, which is what a warm-up is
NO_SESSION_LOG = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
PAGE_SERVED = threading.Event()  # set by the page at the end of each run
NO_VISITOR_S = 30.0  # the other tabs are warmed after this long even if no browser came


def warmer(render):
    """The ``warm(selection)`` of the module a tab's render function is in, or None (nothing slow to prepare)."""
    return getattr(sys.modules[render.__module__], "warm", None)


def guarded(what: str, work, *args):
    """``work(*args)``, timed and logged; None (and the error logged) if it fails."""
    start = time.perf_counter()
    try:
        result = work(*args)
    except Exception:  # noqa: BLE001 - the page does this work again and reports what fails
        log.exception("warm-up of %s failed; the page will do the work itself", what)
        return None
    log.info("warm-up of %s done in %.1f s", what, time.perf_counter() - start)
    return result


def first_page():
    """Import every tab's libraries, load the plugins, then warm the first tab; the start selection."""
    from generators.registry import load_plugins

    from . import sidebar
    from .tabs import TABS

    load_plugins()
    selection = sidebar.selection_at_start()
    if warm := warmer(TABS[0][1]):
        warm(selection)
    return selection


def other_tabs(selection) -> None:
    """Every other tab's default view, one after another."""
    from .tabs import TABS

    for title, render in TABS[1:]:
        if warm := warmer(render):
            guarded(title, warm, selection)


@contextmanager
def half_the_cores():
    """Torch on half the cores while the other tabs are warmed in the background: that runs while a browser,
    often on the same machine, draws the first page and its user's first clicks, which need the other half.
    Threads started meanwhile (Streamlit's script runs) inherit the lower count; it is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, before // 2))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def freeze_heap() -> None:
    """Move everything alive now (torch, plotly, pandas, the loaded models: ~400 000 objects) out of the garbage
    collector's reach. Each full collection would otherwise walk them all, ~0.3 s on this kind of CPU, and one
    falls due every few reruns: that pause was most of a tab switch."""
    gc.collect()
    gc.freeze()


def warm_up(background: bool = True) -> threading.Thread | None:
    """The first page now; the other tabs in a daemon thread (returned) or now (``background=False``)."""
    level = NO_SESSION_LOG.level
    NO_SESSION_LOG.setLevel(logging.ERROR)
    selection = guarded("the first page", first_page)
    freeze_heap()
    if selection is None:
        NO_SESSION_LOG.setLevel(level)
        return None

    def rest():
        PAGE_SERVED.wait(NO_VISITOR_S if background else 0)
        with half_the_cores():
            other_tabs(selection)
        freeze_heap()
        NO_SESSION_LOG.setLevel(level)

    if not background:
        rest()
        return None
    thread = threading.Thread(target=rest, name="dashboard-warm-up", daemon=True)
    thread.start()
    return thread


@asynccontextmanager
async def lifespan(_app):
    """``st.App`` lifespan: warm up (in a worker thread, so the event loop stays free) before serving."""
    await asyncio.to_thread(warm_up)
    yield
