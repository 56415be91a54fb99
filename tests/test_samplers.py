"""Latent samplers: the two-stage VAE reproduces a Gaussian code set; fitted samplers are stored, reused and refit
exactly when the run's weights change; the sampler list is one constant every CLI offers."""

import os

import pytest
import torch

from evaluation.__main__ import build_parser as evaluation_parser
from generators.__main__ import build_parser as generators_parser
from generators.checkpoints import save_weights
from generators.data import ImageSplit
from generators.errors import UserError
from generators.registry import build_model
from generators.samplers import (
    FITTED_SAMPLERS,
    SAMPLERS,
    GaussianMixtureSampler,
    TwoStageSampler,
    encode_all,
    fitted_sampler,
    latent_sampler,
    stored_model_hash,
    training_codes,
    weights_hash,
)
from tests.helpers import tiny_options

FAST_TWO_STAGE_STEPS = 300


DIM = 4  # latent size of the Gaussian codes below


def gaussian_codes(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes drawn from N(mean, cov) with a correlated, non-unit covariance; returns (codes, mean, cov)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(DIM, DIM, generator=g)
    cov = a @ a.T + 0.5 * torch.eye(DIM)
    mean = torch.tensor([1.0, -2.0, 0.5, 3.0])
    return mean + torch.randn(n, DIM, generator=g) @ torch.linalg.cholesky(cov).T, mean, cov


def test_two_stage_fitted_on_gaussian_codes_reproduces_their_mean_and_covariance():
    codes, _, _ = gaussian_codes()
    sampler = TwoStageSampler.fit(codes, steps=1500)
    z = sampler.sample(40_000, torch.Generator().manual_seed(1))
    target = torch.cov(codes.T)
    scale = codes.std(0)
    assert ((z.mean(0) - codes.mean(0)).abs() / scale).max() < 0.05
    assert (torch.cov(z.T) - target).norm() / target.norm() < 0.06


def test_two_stage_round_trips_through_its_file(tmp_path):
    codes, _, _ = gaussian_codes(500)
    sampler = TwoStageSampler.fit(codes, steps=20)
    sampler.save(tmp_path / "s.safetensors", "abc")
    loaded = TwoStageSampler.load(tmp_path / "s.safetensors", DIM)
    assert stored_model_hash(tmp_path / "s.safetensors") == "abc"
    draw = lambda s: s.sample(16, torch.Generator().manual_seed(3))  # noqa: E731
    assert torch.equal(draw(sampler), draw(loaded))


def test_a_torn_two_stage_file_is_one_user_error(tmp_path):
    (tmp_path / "s.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(UserError, match="not a valid two-stage sampler file"):
        TwoStageSampler.load(tmp_path / "s.safetensors", DIM)


@pytest.fixture
def fast_two_stage(monkeypatch):
    fit = TwoStageSampler.fit.__func__
    monkeypatch.setattr(TwoStageSampler, "fit", classmethod(lambda cls, codes: fit(cls, codes, FAST_TWO_STAGE_STEPS)))


@pytest.fixture
def ae_run(tmp_path):
    """A run folder holding an untrained tiny autoencoder, and 300 digits to fit on."""
    torch.manual_seed(0)
    model = build_model("ae", tiny_options("ae")).eval()
    save_weights(tmp_path, model.state_dict(), {"model": "ae", "model_config": model.config.to_dict()})
    return model, tmp_path, torch.rand(300, 1, 28, 28)


@pytest.mark.parametrize("kind", list(FITTED_SAMPLERS))
def test_fitted_once_reused_and_refit_when_the_weights_change(ae_run, kind, fast_two_stage):
    model, run_dir, images = ae_run
    path = run_dir / FITTED_SAMPLERS[kind][1]
    fitted_sampler(model, kind, run_dir, images)
    assert stored_model_hash(path) == weights_hash(run_dir)
    first = path.read_bytes()
    os.utime(path, (0, 0))
    fitted_sampler(model, kind, run_dir, lambda: pytest.fail("a stored, current sampler must not be refit"))
    assert path.stat().st_mtime == 0 and path.read_bytes() == first

    with torch.no_grad():  # the run trains on: new weights, so the sampler's codes are stale
        for p in model.parameters():
            p.add_(0.1)
    save_weights(run_dir, model.state_dict(), {"model": "ae", "model_config": model.config.to_dict()})
    fitted_sampler(model, kind, run_dir, images)
    assert stored_model_hash(path) == weights_hash(run_dir) and path.read_bytes() != first


def test_a_gmm_file_from_before_the_hash_is_refit(ae_run):
    model, run_dir, images = ae_run
    codes = encode_all(model, images)
    GaussianMixtureSampler.fit(codes, components=2).save(run_dir / "sampler_gmm.safetensors")  # no hash
    fitted_sampler(model, "gmm", run_dir, images)
    assert stored_model_hash(run_dir / "sampler_gmm.safetensors") == weights_hash(run_dir)


def test_conditional_encoder_codes_use_each_images_own_label():
    torch.manual_seed(0)
    model = build_model("cvae", tiny_options("cvae", num_classes=3)).eval()
    images = torch.randint(0, 256, (9, 1, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([2, 2, 2, 0, 0, 0, 1, 1, 1])
    codes = training_codes(model, None, ImageSplit(images, labels))
    with torch.no_grad():
        assert torch.allclose(codes, model.encode(images.float() / 255, labels))
        assert not torch.allclose(codes, model.encode(images.float() / 255))  # equal shares: other labels


def test_a_model_without_encoder_is_refused_a_fitted_sampler(tmp_path):
    model = build_model("dcgan", tiny_options("dcgan"))
    for kind in FITTED_SAMPLERS:
        with pytest.raises(UserError, match=f"--sampler {kind} needs a model with an encoder"):
            latent_sampler(model, kind, tmp_path)


def _sampler_choices(parser, *path) -> tuple:
    for name in path:  # into the sub-command
        parser = next(a for a in parser._actions if a.dest == "command").choices[name]
    return tuple(next(a for a in parser._actions if a.dest == "sampler").choices)


def test_every_cli_offers_exactly_the_sampler_list():
    assert SAMPLERS == ("prior", *FITTED_SAMPLERS)
    assert _sampler_choices(generators_parser(), "sample") == SAMPLERS
    assert _sampler_choices(evaluation_parser()) == SAMPLERS
