"""Model name -> class. Adding a model is one new file and one line here."""
from __future__ import annotations

from .autoencoder import Autoencoder
from .base import Generator, ModelConfig
from .dcgan import DCGAN
from .errors import UserError
from .vae import VAE

MODELS: dict[str, type[Generator]] = {
    "vae": VAE,
    "ae": Autoencoder,
    "dcgan": DCGAN,
}


def model_class(name: str) -> type[Generator]:
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}") from None


def build_model(name: str, config: dict | ModelConfig) -> Generator:
    cls = model_class(name)
    if isinstance(config, dict):
        config = cls.Config.from_dict(config)
    return cls(config)
