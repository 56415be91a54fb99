"""Shared state of the dashboard: where the runs are, the sidebar's selection, cached models and data.

Models are loaded once per weights file (``st.cache_resource`` keyed by path and modification time, so a
run that is still training is reloaded when its checkpoint changes) and every tab gets them from here.
"""

from __future__ import annotations

import functools
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from evaluation import pictures
from evaluation import runs as records
from generators.checkpoints import load_run
from generators.errors import UserError

log = logging.getLogger("dashboard")

CHECKPOINTS_ENV = "GENLAB_CHECKPOINTS"
RENDER_COUNTS_ENV = "GENLAB_RENDER_COUNTS"  # tests: each tab shows how often it has run
VIEW_KEY = "view"  # the open tab
CHART_COUNT_KEY = "tab_charts"  # test mode: charts drawn by the tab being rendered (counted by export.chart)


def checkpoints_dir() -> Path:
    """The folder of run folders, absolute (training jobs run in another working folder and must write where the
    page reads); tests point ``GENLAB_CHECKPOINTS`` at a temp folder."""
    return Path(os.environ.get(CHECKPOINTS_ENV, "checkpoints")).absolute()


class Run(records.Run):
    """One readable run folder as the tabs see it: ``evaluation.runs.Run`` whose slow steps (the model, the
    weights' hash, samples, the nearest-neighbour gallery) come from Streamlit's caches, shared by every session
    and by the report the Findings tab builds."""

    def model(self):
        return cached_model(str(self.run_dir), self.weights_mtime)

    def weights_hash(self) -> str | None:
        return _weights_hash(self)

    def sample_images(self, n: int, seed: int, sampler: str, choice: str):
        return _sample_images(self, n, seed, sampler, choice)

    def gallery(self, seed: int, cache_dir):
        return _gallery(self, seed, str(cache_dir))


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose: the runs to compare and the shared drawing settings."""

    runs: tuple[Run, ...]
    seed: int
    n_samples: int
    scale: int


def scan_runs() -> tuple[list[Run], list[tuple[Path, str]]]:
    """The readable runs, and the folders that are not (a run of a model this installation does not know
    counts as unreadable: no tab could draw it)."""
    return records.scan(checkpoints_dir(), Run)


@st.cache_resource(max_entries=32, show_spinner="Loading model…")
def cached_model(run_dir: str, mtime: float):
    """The model of ``run_dir`` in eval mode; ``mtime`` is only part of the cache key.

    Loaded outside inference mode even when first asked for inside it: the GAN's latent inversion
    later needs gradients through these weights.
    """
    with torch.inference_mode(False):
        model, _info = load_run(Path(run_dir), "cpu")
    return model


def run_dataset(run: Run):
    """The dataset a run was trained on, converted the same way it was for training (cached by generators)."""
    return run.dataset()


def test_indices(run: Run, count: int, seed: int) -> tuple[int, ...]:
    """``count`` test-split positions drawn from ``seed``: the same images for every run of one dataset."""
    size = len(run_dataset(run).test)
    return tuple(torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:count].tolist())


def test_images(run: Run, indices: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The test images (float in [0, 1]) at ``indices`` and their labels (None when the dataset has none)."""
    split = run_dataset(run).test
    images, labels = split[list(indices)]
    return images, (labels if split.labels is not None else None)


@st.cache_resource(max_entries=512, show_spinner="Computing…")
def _cached_call(_call, name: str, weights: tuple, *args):
    return _call(*args)


def _weights_keys(runs) -> tuple:
    return tuple((str(run.run_dir), run.weights_mtime) for run in runs)


def per_run_cache(func):
    """Cache ``func(run, *hashable_args)`` across reruns and sessions, keyed by the run's weights file.

    A run still training gets a new key with each checkpoint. Results are shared: never modify them.
    """
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def cached(run: Run, *args):
        return _cached_call(functools.partial(func, run), name, _weights_keys((run,)), *args)

    return cached


def runs_cache(func):
    """``per_run_cache`` for ``func(runs, *hashable_args)`` over several runs (a figure with a panel per run)."""
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def cached(runs, *args):
        runs = tuple(runs)
        return _cached_call(functools.partial(func, runs), name, _weights_keys(runs), *args)

    return cached


def _weights_hash_uncached(run: Run) -> str | None:
    return records.Run.weights_hash(run)


def _sample_images_uncached(run: Run, n: int, seed: int, sampler: str, choice: str):
    return pictures.sample_images(run, n, seed, sampler, choice)


def _gallery_uncached(run: Run, seed: int, cache_dir: str):
    return pictures.gallery(run, seed, cache_dir)


_weights_hash = per_run_cache(_weights_hash_uncached)
_sample_images = per_run_cache(_sample_images_uncached)
_gallery = per_run_cache(_gallery_uncached)


def class_kwargs(run: Run, labels) -> dict:
    """``{"labels": ...}`` for a class-conditional run's networks, ``{}`` for any other run (or no labels)."""
    if labels is None or not run.capabilities.conditional:
        return {}
    return {"labels": torch.as_tensor(labels).long().flatten()}


def fixed_class(run: Run, count: int, seed: int) -> dict:
    """One class (picked by ``seed``) for ``count`` codes of a class-conditional run, so a path or a traversal
    changes the latent only; ``{}`` for other runs."""
    classes = run.capabilities.num_classes
    return {} if classes is None else {"labels": torch.full((count,), seed % classes)}


@per_run_cache
def latent_codes(run: Run, indices: tuple[int, ...]) -> torch.Tensor:
    """Latents of the test images at ``indices``: encoded, or found by latent inversion for a model without an
    encoder (with the evaluation's inversion settings)."""
    model = run.model()
    images, labels = test_images(run, indices)
    kw = class_kwargs(run, labels)
    if run.capabilities.encoder:
        with torch.inference_mode():
            return model.encode(images, **kw).cpu()
    from evaluation.inversion import invert  # no encoder: optimise z until decode(z) matches

    z, _recon = invert(model, images, generator=torch.Generator().manual_seed(0), labels=kw.get("labels"))
    return z.detach().cpu()


def torch_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@contextmanager
def shown_errors(where: str):
    """Turn an error into one ``st.error`` line so the rest of the page keeps working.

    A ``UserError`` carries its own fix; anything else is a bug: its traceback goes to the terminal log,
    never to the page. Streamlit's own rerun/stop signals are ``BaseException`` and pass through.
    """
    try:
        yield
    except UserError as exc:
        st.error(f"{where}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the page must survive a bug in one tab
        log.exception("%s failed", where)
        st.error(
            f"{where} failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}); details are in the terminal log."
        )


def sections(parts: dict, key: str) -> None:
    """A tab's parts as tabs of its own, ``{title: draw()}``: only the open part is drawn, so a tab full of
    charts opens quickly (each plotly chart costs the browser a fifth of a second or more); switching re-runs
    the enclosing tab's fragment alone."""
    for part, (title, draw) in zip(st.tabs(list(parts), key=key, on_change="rerun"), parts.items()):
        with part:
            if part.open:
                with shown_errors(title):
                    draw()


def when_opened(label: str, key: str, draw) -> None:
    """An expander whose contents are drawn only while it is open: Streamlit builds a closed expander's
    contents in the browser too, and a wide table or a run's whole configuration is costly to lay out for
    nobody. Opening it re-runs the enclosing tab's fragment alone."""
    box = st.expander(label, key=key, on_change="rerun")
    if box.open:
        with box, shown_errors(label):
            draw()


CHOICE_KEYS = "choice_keys"  # the session keys the tabs' runs created: their widgets' keys among them


def render_tab(title: str, render, selection: Selection) -> None:
    """One tab's body (run as a fragment): its errors stay in it. In test mode it counts its runs and, at its
    end, says how many charts it drew (so a browser script can wait until all of them are on screen)."""
    counting = os.environ.get(RENDER_COUNTS_ENV) == "1"
    before = set(st.session_state.keys())
    if counting:
        counts = st.session_state.setdefault("render_counts", {})
        counts[title] = counts.get(title, 0) + 1
        st.caption(f"render count {title}: {counts[title]}")
        st.session_state[CHART_COUNT_KEY] = 0
    with shown_errors(title):
        render(selection)
    keep_choices(set(st.session_state.keys()) - before)
    if counting:
        st.caption(f"charts in {title}: {st.session_state.pop(CHART_COUNT_KEY)}")


def keep_choices(new_keys: set[str]) -> None:
    """Keep every choice made in a tab (``new_keys``: the keys its run created) while another tab or part is open.

    Only the open tab and its open part are drawn, and Streamlit forgets the value of a widget a run does not draw:
    back on the tab, the box would show one value while the page used its default. A widget's value stored as a
    plain session value is kept; a widget drawn in this run (and a button) refuses the assignment and keeps its own.
    """
    from streamlit.errors import StreamlitAPIException

    known = st.session_state.setdefault(CHOICE_KEYS, set())
    known |= new_keys
    for key in known & set(st.session_state.keys()):
        try:
            st.session_state[key] = st.session_state[key]
        except StreamlitAPIException:
            pass
