"""Latent samplers fitted after training, kept apart from the models (as Pythae does).

A VAE's aggregate posterior is not N(0, I): the prior puts mass in regions the decoder never saw. A
Gaussian mixture fitted to the encoded training set samples where the codes really are. It is stored
next to the weights as ``sampler_gmm.safetensors`` (plain tensors, no pickle) so sampling is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load, save

from .base import Generator
from .checkpoints import atomic_write_bytes, read_regular_file
from .errors import UserError

SAMPLERS = ("prior", "gmm")
GMM_FILE = "sampler_gmm.safetensors"
MAX_COMPONENTS = 1000
MAX_SAMPLER_BYTES = 512 * 1024**2


class GaussianMixtureSampler:
    """Full-covariance Gaussian mixture over latent codes, sampled with a torch.Generator."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor):
        self.weights, self.means = weights.double(), means.double()
        self.covariances = covariances.double()
        self.cholesky = torch.linalg.cholesky(self.covariances)

    @classmethod
    def fit(cls, codes: torch.Tensor, components: int = 10, seed: int = 0) -> GaussianMixtureSampler:
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(components, covariance_type="full", random_state=seed, reg_covar=1e-5)
        gmm.fit(codes.double().cpu().numpy())
        return cls(*(torch.from_numpy(a) for a in (gmm.weights_, gmm.means_, gmm.covariances_)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        z = self.means[component] + (self.cholesky[component] @ eps.unsqueeze(-1)).squeeze(-1)
        return z.float()

    def save(self, path: Path) -> None:
        tensors = {"weights": self.weights, "means": self.means, "covariances": self.covariances}
        atomic_write_bytes(Path(path), save({k: v.contiguous() for k, v in tensors.items()}))

    @classmethod
    def load(cls, path: Path, latent_dim: int) -> GaussianMixtureSampler:
        """The sampler stored at ``path``, refused unless it is a regular file of a bounded size that holds a
        finite mixture of at most ``MAX_COMPONENTS`` components over ``latent_dim`` dimensions."""
        data = read_regular_file(Path(path), MAX_SAMPLER_BYTES)
        try:
            t = load(data)
            weights, means, covariances = t["weights"], t["means"], t["covariances"]
            k = len(weights)  # a 0-d tensor has no length
        except Exception as exc:
            raise UserError(f"{path} is not a valid GMM sampler file: {str(exc).splitlines()[0][:200]}") from None
        shapes = {"weights": (k,), "means": (k, latent_dim), "covariances": (k, latent_dim, latent_dim)}
        for name, tensor in (("weights", weights), ("means", means), ("covariances", covariances)):
            if tuple(tensor.shape) != shapes[name] or not tensor.is_floating_point():
                raise UserError(
                    f"{path} does not fit this model (latent size {latent_dim}): {name} has shape "
                    f"{tuple(tensor.shape)}, not {shapes[name]}; delete it to fit a new sampler"
                )
            if not torch.isfinite(tensor).all():
                raise UserError(f"{path}: {name} holds NaN or infinite values; delete it to fit a new sampler")
        if not 1 <= k <= MAX_COMPONENTS or (weights < 0).any() or weights.sum() <= 0:
            raise UserError(f"{path}: the mixture needs 1 to {MAX_COMPONENTS} components with weights >= 0")
        try:
            return cls(weights, means, covariances)
        except Exception as exc:  # a covariance that is not positive definite
            raise UserError(f"{path} is not a valid GMM sampler file: {str(exc).splitlines()[0][:200]}") from None


@torch.inference_mode()
def encode_all(model: Generator, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat(
        [model.encode(images[i : i + batch_size].to(model.device)).cpu() for i in range(0, len(images), batch_size)]
    )


def gmm_sampler(model: Generator, run_dir: Path, train_images=None, components: int = 10) -> GaussianMixtureSampler:
    """The run's stored GMM sampler, fitted on the encoded train split (and stored) the first time.

    ``train_images``: the images, or a function returning them (called only when a fit is needed)."""
    path = Path(run_dir) / GMM_FILE
    if path.exists() or path.is_symlink():
        return GaussianMixtureSampler.load(path, model.config.latent_dim)
    if not model.capabilities.encoder:
        raise UserError(f"--sampler gmm needs a model with an encoder; {model.name} has none (use --sampler prior)")
    if callable(train_images):
        train_images = train_images()
    if train_images is None:
        raise UserError(f"{path} is missing and no training images were given to fit it")
    sampler = GaussianMixtureSampler.fit(encode_all(model, train_images), components)
    sampler.save(path)
    return sampler


def needs_encoder(kind: str) -> bool:
    """Whether the sampler ``kind`` is fitted on encoded training images (so only works with an encoder)."""
    return kind != "prior"


def latent_sampler(model: Generator, kind: str, run_dir: Path, train_images=None):
    """A function (n, generator) -> z for the chosen sampler. ``train_images``: images or a function giving them."""
    if kind == "prior":
        return model.prior
    if kind == "gmm":
        sampler = gmm_sampler(model, run_dir, train_images)
        return lambda n, generator=None: sampler.sample(n, generator).to(model.device)
    raise UserError(f"unknown sampler {kind!r}: choose one of {', '.join(SAMPLERS)}")
