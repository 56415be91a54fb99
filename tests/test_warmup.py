"""Server-start warm-up (dashboard/warmup.py): the first page finds its grids already drawn and the other tabs
their slow parts; a failing warm-up never stops the server."""

from __future__ import annotations

import asyncio
import gc
import logging

import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import PAGE, interpolation, latent, samples, warmup
from dashboard.state import CHECKPOINTS_ENV, VIEW_KEY
from evaluation import pictures
from generators.default_runs import SELECTED_AT_START


def count_calls(monkeypatch, module, name: str) -> list:
    """Record every call of ``module.name`` (its first argument)."""
    calls = []
    real = getattr(module, name)

    def counting(first, *args, **kwargs):
        calls.append(first)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_pages_find_what_the_warm_up_computed(dashboard_runs, monkeypatch):
    monkeypatch.setenv(CHECKPOINTS_ENV, str(dashboard_runs))
    st.cache_resource.clear()  # other tests may have drawn these grids already
    st.cache_data.clear()
    drawn = count_calls(monkeypatch, pictures, "latent_sampler")  # one per grid drawn
    projected = count_calls(monkeypatch, latent, "project")  # one per latent map
    strips = count_calls(monkeypatch, interpolation, "path")  # one per interpolation strip computed
    gc.unfreeze()
    warmup.warm_up(background=False)
    assert gc.get_freeze_count() > 100_000  # what the warm-up imported and loaded is out of the collector's way
    gc.unfreeze()
    assert len(drawn) == len(SELECTED_AT_START)  # the runs a new page opens on, one grid each
    assert len(projected) >= 1 and len(strips) == len(SELECTED_AT_START)
    counts = len(drawn), len(projected), len(strips)
    at = AppTest.from_file(str(PAGE), default_timeout=180).run()
    assert not at.exception and not at.error
    assert len(at.tabs[0].get("image")) == len(SELECTED_AT_START)
    for title in ("Interpolation", "Latent space"):
        at.session_state[VIEW_KEY] = title
        at.run()
        assert not at.exception and not at.error
    assert (len(drawn), len(projected), len(strips)) == counts  # the page found every grid, strip and map cached


def test_a_failing_warm_up_is_logged_and_the_server_starts(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path))

    def broken(selection):
        raise RuntimeError("boom")

    monkeypatch.setattr(samples, "warm", broken)
    with caplog.at_level(logging.ERROR, logger="dashboard"):

        async def serve():
            async with warmup.lifespan(None):
                return "serving"

        assert asyncio.run(serve()) == "serving"
    assert "warm-up of the first page failed" in caplog.text


def test_the_background_warm_up_leaves_half_the_cores_to_the_browser(monkeypatch):
    import torch

    before = torch.get_num_threads()
    seen = []
    monkeypatch.setattr(warmup, "first_page", lambda: "the start selection")
    monkeypatch.setattr(warmup, "other_tabs", lambda selection: seen.append((selection, torch.get_num_threads())))
    warmup.warm_up(background=False)
    assert seen == [("the start selection", max(1, before // 2))]
    assert torch.get_num_threads() == before  # the page's own work gets every core again
