"""Server-start warm-up (dashboard/warmup.py): the first page finds its grids already drawn; a failing warm-up
never stops the server."""

from __future__ import annotations

import asyncio
import logging

import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import PAGE, samples, warmup
from dashboard.state import CHECKPOINTS_ENV
from generators.default_runs import SELECTED_AT_START


def count_draws(monkeypatch) -> list[str]:
    """Record the run of every latent sampler the Samples tab builds (one per grid it draws)."""
    drawn = []
    real = samples.latent_sampler

    def counting(model, kind, run_dir, *args, **kwargs):
        drawn.append(run_dir.name)
        return real(model, kind, run_dir, *args, **kwargs)

    monkeypatch.setattr(samples, "latent_sampler", counting)
    return drawn


def test_first_page_draws_nothing_the_warm_up_drew(dashboard_runs, monkeypatch):
    monkeypatch.setenv(CHECKPOINTS_ENV, str(dashboard_runs))
    st.cache_resource.clear()  # other tests may have drawn these grids already
    drawn = count_draws(monkeypatch)
    warmup.warm_up()
    assert sorted(drawn) == sorted(SELECTED_AT_START)  # the runs a new page opens on, one grid each
    at = AppTest.from_file(str(PAGE), default_timeout=180).run()
    assert not at.exception and not at.error
    assert len(at.tabs[0].get("image")) == len(SELECTED_AT_START)
    assert sorted(drawn) == sorted(SELECTED_AT_START)  # the page found every grid in the cache


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
    assert "warm-up failed" in caplog.text
