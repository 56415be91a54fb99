"""Server-start warm-up: the work every first page would otherwise wait for, done before the server answers.

A browser's first page would pay for importing torch, torchvision, plotly and the tabs (several seconds on a
laptop CPU), loading the models of the runs it opens on and drawing their grids. ``app.py`` runs ``warm_up``
in the server's lifespan, before the first request is served, so all of that is already in Streamlit's
caches (shared by every session) when the first browser connects. A failure here is only logged: the page
then does the same work itself and shows any error where it belongs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

log = logging.getLogger("dashboard")
# warns once per cached call made outside a browser session, which is the point of the warm-up
NO_SESSION_LOG = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")


def warm_up() -> None:
    """Import what the page imports, then load the models and draw the grids of the page a browser opens on."""
    start = time.perf_counter()
    level = NO_SESSION_LOG.level
    NO_SESSION_LOG.setLevel(logging.ERROR)
    try:
        from generators.registry import load_plugins

        from . import samples, sidebar, tabs  # noqa: F401 - tabs: every tab's libraries, imported now

        load_plugins()
        samples.warm(sidebar.selection_at_start())
    except Exception:  # noqa: BLE001 - the page does this work again and reports what fails
        log.exception("warm-up failed; the first page will do the work itself")
        return
    finally:
        NO_SESSION_LOG.setLevel(level)
    log.info("warm-up done in %.1f s", time.perf_counter() - start)


@asynccontextmanager
async def lifespan(_app):
    """``st.App`` lifespan: warm up (in a worker thread, the event loop stays free) before serving."""
    await asyncio.to_thread(warm_up)
    yield
