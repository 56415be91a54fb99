"""The proof that a model family is one file and one registry line: two models the rest of the code has never
heard of (subclasses of the existing VAE and DCGAN under new names and titles), registered at runtime through the
public API (``GENLAB_PLUGINS`` for the command lines, ``register`` in-process for the dashboard), go through the
whole path: train / sample / list, evaluation, the benchmarks' grid figure, and every dashboard tab."""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap

import numpy as np
import pytest

from generators.errors import UserError
from generators.registry import MODELS, register
from tests.helpers import assert_one_line_error, run_cli, tiny_flags

PLUGIN = "genlab_test_plugin_models"
PLUGIN_SOURCE = '''
from generators.dcgan import DCGAN
from generators.registry import register
from generators.vae import VAE


class WobblyVAE(VAE):
    """A VAE under another name: nothing outside this file knows it."""

    title = "Wobbly VAE"


class ToyGAN(DCGAN):
    title = "Toy GAN"


register("wobbly", WobblyVAE)
register("toygan", ToyGAN)
'''
NEW_MODELS = {"wobbly": "vae", "toygan": "dcgan"}  # new name -> the family its tiny options come from


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / f"{PLUGIN}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    return folder


@pytest.fixture(scope="module")
def plugin_env(plugin_dir):
    import os

    from tests.helpers import ROOT

    return {"GENLAB_PLUGINS": PLUGIN, "PYTHONPATH": os.pathsep.join([str(ROOT), str(plugin_dir)])}


@pytest.fixture(scope="module")
def plugin_runs(tmp_path_factory, plugin_env, dashboard_runs):
    """Both models trained through the CLI into a checkpoints folder that also holds the quick extractor."""
    out = tmp_path_factory.mktemp("plugin_runs")
    shutil.copytree(dashboard_runs / "_extractors", out / "_extractors")
    for name, family in NEW_MODELS.items():
        result = run_cli(
            "generators",
            "train",
            name,
            "--steps",
            "12",
            "--batch-size",
            "32",
            "--out-dir",
            str(out),
            *tiny_flags(family, latent_dim=8),
            env=plugin_env,
        )
        assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def registered(plugin_dir, monkeypatch):
    """The plugin imported in this process (as the dashboard does), and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    module = importlib.import_module(PLUGIN)
    yield module
    for name in NEW_MODELS:
        MODELS.pop(name, None)
    sys.modules.pop(PLUGIN, None)


def test_cli_trains_samples_lists_and_evaluates_the_new_models(plugin_runs, plugin_env, tmp_path):
    listing = run_cli("generators", "list", "--out-dir", str(plugin_runs), env=plugin_env)
    assert listing.returncode == 0, listing.stderr
    for name in NEW_MODELS:
        assert f"{name}-mnist5k" in listing.stdout
        out = tmp_path / f"{name}.npy"
        sample = run_cli(
            "generators", "sample", str(plugin_runs / f"{name}-mnist5k"), "--n", "9", "--out", str(out), env=plugin_env
        )
        assert sample.returncode == 0, sample.stderr
        images = np.load(out)
        assert images.shape == (9, 1, 28, 28) and images.dtype == np.uint8
    table = tmp_path / "table.json"
    evaluation = run_cli(
        "evaluation",
        *(str(plugin_runs / f"{n}-mnist5k") for n in NEW_MODELS),
        "--n",
        "100",
        "--iwae-k",
        "4",
        "--inversion-steps",
        "5",
        "--extractor-dir",
        str(plugin_runs / "_extractors"),
        "--json",
        str(table),
        env=plugin_env,
        timeout=600,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    import json

    rows = {row["model"]: row for row in json.loads(table.read_text())}
    assert rows["wobbly"]["elbo_nats"] is not None and rows["wobbly"]["recon_method"] == "encode-decode"
    assert rows["toygan"]["elbo_nats"] is None and rows["toygan"]["recon_method"].startswith("latent inversion")


def test_without_the_plugin_the_runs_are_one_clear_error(plugin_runs, tmp_path):
    result = run_cli(
        "generators", "sample", str(plugin_runs / "wobbly-mnist5k"), "--n", "4", "--out", str(tmp_path / "s.npy")
    )
    assert_one_line_error(result, mentions="wobbly")


def test_a_plugin_that_cannot_be_imported_is_one_clear_error():
    result = run_cli("generators", "list", env={"GENLAB_PLUGINS": "no_such_plugin_module"})
    assert_one_line_error(result, mentions="no_such_plugin_module")


def test_benchmark_grid_figure_covers_the_new_models(registered):
    from benchmarks.__main__ import grid_figures

    timings = grid_figures()["grid_ms"]
    assert set(NEW_MODELS) <= set(timings) and all(timings[name] > 0 for name in NEW_MODELS)


def test_every_dashboard_tab_gives_the_new_models_the_views_their_capabilities_call_for(
    registered, plugin_runs, monkeypatch
):
    from dashboard.latent import TRAVERSALS
    from tests.test_app import TAB_TITLES, assert_clean, image_urls, open_app, part, tab

    at = open_app(plugin_runs, monkeypatch)
    assert_clean(at)
    assert set(at.multiselect(key="runs").value) == {f"{name}-mnist5k" for name in NEW_MODELS}
    for title in TAB_TITLES:
        assert tab(at, title) is not None
    tab(at, "Train")
    options = at.selectbox(key="train_model").options
    assert {"Wobbly VAE", "Toy GAN"} <= set(options), options
    # latent space: the posterior model gets its map and its KL-per-dimension chart, the GAN neither (it says
    # why); both get traversals
    latent = tab(at, "Latent space")
    assert len(latent.get("plotly_chart")) == 1
    assert any("toygan" in i.value and "no map" in i.value for i in latent.info)
    charts = [chart.proto.spec for chart in part(at, "Latent space", "latent_part", TRAVERSALS).get("plotly_chart")]
    assert_clean(at)
    assert len(charts) == 2 + 1 and sum("KL per latent dimension" in spec for spec in charts) == 1
    assert sum("latent traversals" in spec for spec in charts) == 2
    # reconstruction: ELBO as the VAE-like model's anomaly score, the discriminator's logit for the GAN-like one,
    # and latent inversion for the GAN once asked for
    anomalies = part(at, "Reconstruction", "recon_part", "Anomaly detection").get("plotly_chart")
    specs = " ".join(chart.proto.spec for chart in anomalies)
    assert "negative ELBO" in specs and "D(x) logit" in specs
    recon = part(at, "Reconstruction", "recon_part", "Reconstructions")
    assert len(image_urls(recon)) == 1 + 1  # originals + the encoder model's; the GAN's inversion is opt-in
    at.checkbox(key="recon_invert").check().run()
    assert_clean(at)
    assert len(image_urls(tab(at, "Reconstruction"))) == 1 + 2
    assert len(image_urls(part(at, "Reconstruction", "recon_part", "Denoising"))) == 2 + 1
    # metrics: the discriminator's loss-balance reading for the GAN-like model only
    notes = [
        c.value for c in part(at, "Metrics", "metrics_part", "Training curves").caption if "loss balance" in c.value
    ]
    assert len(notes) == 1 and notes[0].startswith("toygan-mnist5k")
    assert any("Toy GAN" in m.value or "toygan" in m.value for m in tab(at, "Findings & report").markdown)


def test_registering_a_name_twice_or_a_config_lacking_a_field_is_refused(registered):
    from dataclasses import dataclass

    from generators.vae import VAE, VAEConfig

    with pytest.raises(UserError, match="already registered"):
        register("wobbly", registered.WobblyVAE)

    @dataclass(kw_only=True)
    class NeedsADepth(VAEConfig):
        depth: int  # no default: a stored run or the command line could not build it

    @dataclass
    class NoLatent:  # not a ModelConfig: no image_shape, no latent_dim
        width: int = 8

    for config, mentions in ((NeedsADepth, "depth"), (NoLatent, "ModelConfig")):
        broken = type("Broken", (VAE,), {"title": "Broken", "Config": config})
        with pytest.raises(UserError, match=mentions):
            register("broken", broken)
    assert "broken" not in MODELS
