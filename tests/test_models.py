"""Every registered model, by iterating the registry: shapes, ranges, finite losses, and fitting one batch."""

import math

import pytest
import torch

from generators.data import load_dataset
from generators.registry import MODELS, build_model
from tests.helpers import tiny_options

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 64, 64)]


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("mnist5k")
    return data.train.float_images(16)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_sample_and_decode_shapes_and_range(name, shape):
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": shape, "latent_dim": 8}).eval()
    with torch.no_grad():
        samples = model.sample(5, generator=torch.Generator().manual_seed(1))
        decoded = model.decode(model.prior(3))
    assert samples.shape == (5, *shape) and decoded.shape == (3, *shape)
    assert samples.dtype == torch.float32
    assert samples.min() >= 0 and samples.max() <= 1
    if model.has_encoder:
        assert model.encode(samples).shape == (5, 8)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: "x".join(map(str, s)))
def test_training_step_returns_finite_floats(name, shape):
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": shape, "latent_dim": 8}).train()
    optimizers = model.configure_optimizers(None)
    batch = (torch.rand(8, *shape), torch.zeros(8, dtype=torch.long))
    logs = model.training_step(batch, optimizers)
    assert logs and all(isinstance(v, float) and math.isfinite(v) for v in logs.values())


def test_same_generator_seed_gives_same_samples():
    torch.manual_seed(0)
    model = build_model("vae", {"image_shape": (1, 28, 28)}).eval()
    with torch.no_grad():
        a = model.sample(4, generator=torch.Generator().manual_seed(7))
        b = model.sample(4, generator=torch.Generator().manual_seed(7))
        c = model.sample(4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def nearest_batch_error(model, batch: torch.Tensor) -> float:
    """Mean squared distance from each of 32 samples to its nearest image of the batch."""
    model.eval()
    with torch.no_grad():
        samples = model.sample(32, generator=torch.Generator().manual_seed(0))
    model.train()
    return torch.cdist(samples.flatten(1), batch.flatten(1)).pow(2).min(1).values.mean().item() / batch[0].numel()


@pytest.mark.parametrize("name", list(MODELS))
def test_model_overfits_one_batch(name, digits):
    """Autoencoders: the training loss on one fixed batch falls by at least half.
    The GAN has no loss that must fall, so the behaviour is checked instead: its samples move onto the batch
    (nearest-image error at least halves)."""
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": (1, 28, 28)}).train()
    optimizers = model.configure_optimizers(None)
    batch = (digits, torch.zeros(len(digits), dtype=torch.long))
    start_error = nearest_batch_error(model, digits)
    losses = [model.training_step(batch, optimizers) for _ in range(300)]
    if model.has_encoder:
        assert losses[-1]["loss"] <= 0.5 * losses[0]["loss"], (losses[0]["loss"], losses[-1]["loss"])
    else:
        end_error = nearest_batch_error(model, digits)
        assert end_error <= 0.5 * start_error, (start_error, end_error)


def test_vae_loss_is_summed_over_pixels_and_averaged_over_batch():
    """At initialisation the decoder outputs ~0.5 everywhere: BCE summed over 784 pixels is ~784*log 2 per image,
    whatever the batch size (a per-pixel mean would give ~0.69, a batch sum would scale with N)."""
    torch.manual_seed(0)
    model = build_model("vae", {"image_shape": (1, 28, 28)})
    optimizers = {"adam": torch.optim.SGD(model.parameters(), lr=0.0)}
    for n in (4, 32):
        x = torch.rand(n, 1, 28, 28).round()
        logs = model.training_step((x, torch.zeros(n)), optimizers)
        assert logs["recon"] == pytest.approx(784 * math.log(2), rel=0.05)
        assert logs["kl"] >= 0
        assert sum(v for k, v in logs.items() if k.startswith("kl_dim_")) == pytest.approx(logs["kl"], rel=1e-4)


def test_kl_warmup_ramps_beta():
    model = build_model("vae", {"image_shape": (1, 28, 28), "beta": 2.0, "kl_warmup_steps": 10})
    optimizers = model.configure_optimizers(None)
    betas = [model.training_step((torch.rand(4, 1, 28, 28), torch.zeros(4)), optimizers)["beta"] for _ in range(12)]
    assert betas[0] == pytest.approx(0.2) and betas[4] == pytest.approx(1.0) and betas[-1] == pytest.approx(2.0)
    assert all(a <= b for a, b in zip(betas, betas[1:]))


def test_dcgan_ema_warms_up_then_keeps_its_decay():
    """EMA decay = min(ema, (1 + t) / (10 + t)) after t updates: the first average keeps 1/10 of the old copy,
    so a short run is not dominated by G's random initial weights; late updates use the configured decay."""
    torch.manual_seed(0)
    model = build_model("dcgan", tiny_options("dcgan", latent_dim=8, ema=0.999)).train()
    optimizers = model.configure_optimizers(None)
    batch = (torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))

    def one_step_check(expected_decay):
        before = [p.clone() for p in model.generator_ema.parameters()]
        model.training_step(batch, optimizers)
        for old, ema, live in zip(before, model.generator_ema.parameters(), model.generator.parameters()):
            torch.testing.assert_close(ema, expected_decay * old + (1 - expected_decay) * live)

    one_step_check(1 / 10)
    one_step_check(2 / 11)
    model.ema_updates.fill_(100_000)
    one_step_check(0.999)


def test_r1_penalty_matches_the_closed_form_and_its_gradient():
    """For D(x) = a/2 |x|^2 the gradient on an image is a x, so the penalty is a^2 E|x|^2 and its derivative in a
    is 2a E|x|^2: the penalty is kept in the graph, so D's step descends it."""
    from generators.dcgan import r1_penalty

    a = torch.tensor(1.5, requires_grad=True)
    real = torch.rand(6, 1, 8, 8)
    penalty = r1_penalty(lambda x: a / 2 * x.pow(2).flatten(1).sum(1), real)
    mean_square = real.pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(penalty, a.detach() ** 2 * mean_square)
    penalty.backward()
    torch.testing.assert_close(a.grad, 2 * a.detach() * mean_square)


def test_dcgan_r1_runs_on_every_fourth_d_step_and_takes_batchnorm_out_of_d(monkeypatch):
    """Lazy R1: the penalty (scaled by 4) on D steps 0, 4, 8, ...; the counter is in the weights file, so a resumed
    run keeps the rhythm. D has no BatchNorm (a per-image gradient penalty must not mix the batch)."""
    import generators.dcgan as dcgan

    calls = []
    real_penalty = dcgan.r1_penalty
    monkeypatch.setattr(dcgan, "r1_penalty", lambda critic, real: calls.append(1) or real_penalty(critic, real))
    torch.manual_seed(0)
    model = build_model("dcgan", tiny_options("dcgan", r1=1.0)).train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.discriminator.modules())
    optimizers = model.configure_optimizers(None)
    batch = (torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))
    for _ in range(9):
        model.training_step(batch, optimizers)
    assert len(calls) == 3 and int(model.state_dict()["d_steps"]) == 9


def test_dcgan_batchnorm_calibration_matches_the_closed_form():
    """G's first BatchNorm follows a bias-free linear layer of z ~ N(0, I), so its exact statistics are known:
    mean 0 and variance ||w_i||^2 per unit. The calibration (256 quasi-random latents) must land on them far
    closer than 256 random draws would (about 0.2 sd and 30 % at worst), repeat exactly, and leave the global
    RNG alone."""
    torch.manual_seed(0)
    model = build_model("dcgan", tiny_options("dcgan", latent_dim=16))
    linear, norm = model.generator.fc[0], model.generator.fc[1]
    true_sd = linear.weight.pow(2).sum(1).sqrt()
    rng_before = torch.get_rng_state()
    model.batchnorm_calibrated.fill_(False)
    model.eval()
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert (norm.running_mean.abs() / true_sd).max() < 0.02
    relative_var_error = (norm.running_var / true_sd.pow(2) - 1).abs()
    assert relative_var_error.mean() < 0.05 and relative_var_error.max() < 0.15
    first = norm.running_var.clone()
    model.recalibrate_batchnorm()
    assert torch.equal(norm.running_var, first)
