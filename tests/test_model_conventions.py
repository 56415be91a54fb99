"""A model that declares a capability keeps its convention, or is refused at registration with one line: flat
``(N, latent_dim)`` codes, a float ``beta`` field for the β views, ``kl``/``recon`` history columns for the
rate–distortion view (and the objective's and the discriminator's columns). The five built-in models keep them all,
and the β views ask the declared capability, not whether a config happens to hold a ``beta``."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass

import pytest
import torch

from evaluation.runs import Run
from evaluation.sweeps import sweeps
from generators.autoencoder import Autoencoder, AutoencoderConfig
from generators.dcgan import DCGAN
from generators.errors import UserError
from generators.registry import MODELS, check_model_class, register
from generators.vae import VAE
from tests.helpers import ROOT, assert_one_line_error, run_cli

BUILT_IN = ("vae", "ae", "dcgan", "cvae", "cdcgan")


@pytest.fixture
def forget_models():
    """Models registered by a test are removed afterwards."""
    before = set(MODELS)
    yield
    for name in set(MODELS) - before:
        MODELS.pop(name)


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_built_in_models_keep_the_conventions_they_declare(name):
    check_model_class(name, MODELS[name])
    capabilities = MODELS[name].capabilities_for(MODELS[name].Config())
    is_vae = name in ("vae", "cvae")
    assert (capabilities.beta, capabilities.rate_distortion) == (is_vae, is_vae)


def test_the_check_leaves_the_random_numbers_as_they_were():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    check_model_class("vae", MODELS["vae"])
    assert torch.equal(torch.rand(3), expected)


class GridCodes(Autoencoder):
    """Codes of shape (N, latent_dim, 1, 1): the maps and samplers would read them wrongly."""

    title = "Grid codes"

    def encode(self, x):
        return super().encode(x)[:, :, None, None]


class GridPosterior(VAE):
    title = "Grid posterior"

    def posterior(self, x):
        mu, logvar = super().posterior(x)
        return mu, logvar[:, None]  # encode (the posterior mean) is flat; the log-variances are not


@dataclass
class TextBetaConfig(AutoencoderConfig):
    beta: str = "1"
    kl_warmup_steps: int = 0


class NoBetaField(VAE):
    title = "No beta field"
    Config = AutoencoderConfig


class TextBeta(VAE):
    title = "Text beta"
    Config = TextBetaConfig


class NoRate(VAE):
    """Declares rate-distortion (as a VAE) but does not log the rate."""

    title = "No rate"

    def training_step(self, batch, optimizers):
        return {k: v for k, v in super().training_step(batch, optimizers).items() if k != "kl"}


class RateClaimingAutoencoder(Autoencoder):
    title = "Rate-claiming AE"
    logs_rate_distortion = True  # it logs recon, but has no KL to log


class SilentGAN(DCGAN):
    title = "Silent GAN"

    def training_step(self, batch, optimizers):
        logs = super().training_step(batch, optimizers)
        return {"d_loss": logs["d_loss"], "g_loss": logs["g_loss"]}


class OtherObjective(Autoencoder):
    title = "Other objective"
    objective = "elbo"


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (GridCodes, "model 'broken': encode(x) must return flat codes (N, latent_dim) = (2, 4), not (2, 4, 1, 1)"),
        (GridPosterior, "model 'broken': posterior(x)[1] (logvar) must return flat codes (N, latent_dim) = (2, 4)"),
        (NoBetaField, "model 'broken' declares has_beta, so its Config needs a float field `beta`"),
        (TextBeta, "model 'broken' declares has_beta, so its Config needs a float field `beta`"),
        (NoRate, "model 'broken' declares logs_rate_distortion, so every training step must log a number under 'kl'"),
        (RateClaimingAutoencoder, "model 'broken' declares logs_rate_distortion, so every training step must log a "),
        (SilentGAN, "model 'broken' declares has_discriminator, so every training step must log a number under 'd_r"),
        (OtherObjective, "model 'broken' declares objective = 'elbo', so every training step must log a number under"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_a_model_breaking_a_convention_it_declares_is_refused_with_one_line(cls, message, forget_models):
    with pytest.raises(UserError) as refused:
        register("broken", cls)
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)
    assert "broken" not in MODELS


def test_a_plugin_breaking_a_convention_is_one_error_line_for_every_command(tmp_path):
    (tmp_path / "grid_plugin.py").write_text(
        textwrap.dedent(
            """
            from generators.autoencoder import Autoencoder
            from generators.registry import register

            class GridCodes(Autoencoder):
                title = "Grid codes"

                def encode(self, x):
                    return super().encode(x)[:, :, None, None]

            register("grid", GridCodes)
            """
        )
    )
    env = {"GENLAB_PLUGINS": "grid_plugin", "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    result = run_cli("generators", "list", "--out-dir", str(tmp_path / "runs"), env=env)
    assert_one_line_error(result, mentions="model 'grid': encode(x) must return flat codes")


def beta_run(tmp_path, model: str) -> Run:
    """A finished run's record of ``model`` trained with beta = 4 (no weights needed to read its capabilities)."""
    config = {"beta": 4.0, "latent_dim": 4}
    return Run(f"{model}-beta4", tmp_path, {"model": model, "model_config": config, "dataset": "mnist5k"})


def test_the_beta_views_ask_the_declared_capability_not_the_config(tmp_path, forget_models):
    class UndeclaredBeta(VAE):  # a beta field, but no promise that it weights a KL term
        title = "Undeclared beta"
        has_beta = False

    register("undeclared", UndeclaredBeta)
    declared, undeclared = beta_run(tmp_path, "vae"), beta_run(tmp_path, "undeclared")
    assert declared.beta == 4.0 and "β=4" in declared.label
    assert undeclared.beta is None and "β" not in undeclared.label
    assert [list(sweep.runs) for sweep in sweeps([declared, undeclared], "mnist5k")] == [[4.0]]
