"""``--decoder broadcast`` (the spatial broadcast decoder): what it feeds its convolutions, that the encoder-decoder
models learn with it, and that a run trained with it loads back as the same network."""

import pytest
import torch

from generators.checkpoints import load_run
from generators.data import load_dataset
from generators.nets import BroadcastDecoder
from generators.registry import build_model
from tests.helpers import train_tiny_run

ENCODER_MODELS = ("vae", "ae", "cvae")


def test_every_pixel_sees_the_code_and_its_own_coordinates():
    """The first convolution's input: z copied to every pixel, then x and y running from -1 to 1 across the image."""
    decoder = BroadcastDecoder((1, 8, 6), latent_dim=3, width=4)
    seen = []
    decoder.convs[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    z = torch.tensor([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0]])
    logits = decoder(z)
    planes = seen[0]
    assert logits.shape == (2, 1, 8, 6) and planes.shape == (2, 5, 8, 6)
    assert torch.equal(planes[:, :3], z[:, :, None, None].expand(-1, -1, 8, 6))
    assert torch.allclose(planes[0, 3], torch.linspace(-1, 1, 6).expand(8, 6))  # x: along a row
    assert torch.allclose(planes[1, 4], torch.linspace(-1, 1, 8)[:, None].expand(8, 6))  # y: down a column


@pytest.mark.parametrize("name", ENCODER_MODELS)
@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 28, 28)], ids=lambda s: "x".join(map(str, s)))
def test_broadcast_models_encode_and_decode_images_of_the_data_shape(name, shape):
    model = build_model(name, {"image_shape": shape, "latent_dim": 5, "decoder": "broadcast", "base_width": 8}).eval()
    with torch.no_grad():
        samples = model.sample(4, generator=torch.Generator().manual_seed(0))
        codes = model.encode(samples)
    assert samples.shape == (4, *shape) and 0 <= samples.min() and samples.max() <= 1
    assert codes.shape == (4, 5)


@pytest.mark.parametrize("name", ("vae", "ae"))
def test_a_broadcast_model_fits_one_batch_of_sprites(name):
    """Sixteen sprites, 300 steps: the loss falls to under half, and the autoencoder draws each sprite in its place
    (pixel error of its reconstructions a tenth of the error of drawing nothing)."""
    torch.manual_seed(0)
    images = load_dataset("sprites").train.float_images(16)
    model = build_model(name, {"image_shape": (1, 32, 32), "latent_dim": 8, "decoder": "broadcast"}).train()
    optimizers = model.configure_optimizers(None)
    batch = (images, torch.zeros(16, dtype=torch.long))
    losses = [model.training_step(batch, optimizers)["loss"] for _ in range(300)]
    assert losses[-1] <= 0.5 * losses[0], (losses[0], losses[-1])
    if name == "ae":
        with torch.no_grad():
            error = (model.eval().decode(model.encode(images)) - images).square().mean()
        assert error <= 0.1 * images.square().mean(), error


def test_a_broadcast_run_loads_back_with_its_decoder(tmp_path):
    train_tiny_run("vae", tmp_path / "run", 3, options={"decoder": "broadcast"})
    model, info = load_run(tmp_path / "run")
    assert info["model_config"]["decoder"] == "broadcast" and isinstance(model.decoder, BroadcastDecoder)
    again, _ = load_run(tmp_path / "run")
    z = torch.randn(3, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval().decode(z), again.eval().decode(z))


def test_an_unknown_decoder_is_refused_in_one_line():
    from generators.errors import UserError

    with pytest.raises(UserError, match="--decoder must be conv or broadcast"):
        build_model("ae", {"image_shape": (1, 28, 28), "decoder": "unet"})
