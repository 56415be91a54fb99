"""The conventions a model's declared capabilities promise, checked on a tiny model when its class is registered.

Code outside ``generators/`` trusts ``Capabilities``: the β views read the config field ``beta``, the rate–distortion
view the history columns ``kl`` and ``recon``, every latent view flat ``(N, latent_dim)`` codes. A class that declares
a capability and breaks its convention would be drawn wrongly without a word, so it is refused here with one line.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .base import Generator
from .errors import UserError
from .train_config import TrainConfig

TINY_BATCH = 2


def check_conventions(name: str, cls: type[Generator]) -> None:
    """Refuse, with one ``UserError`` line, a class that breaks a convention of what it declares."""
    if cls.has_beta:
        check_beta_field(name, cls)
    with torch.random.fork_rng(devices=[]):  # the check leaves the caller's random numbers as they were
        model = tiny_model(name, cls)
        check_codes(name, model)
        check_history_columns(name, model)


def check_beta_field(name: str, cls: type[Generator]) -> None:
    field = next((f for f in dataclasses.fields(cls.Config) if f.name == "beta"), None)
    if field is None or field.type not in ("float", float):
        raise UserError(
            f"model {name!r} declares has_beta, so its Config needs a float field `beta` (the weight of its KL term)"
        )


def tiny_model(name: str, cls: type[Generator]) -> Generator:
    """A model of ``cls`` with its tiny options (each config field's ``tiny`` metadata), in training mode."""
    try:
        return cls(cls.Config(**cls.Config.tiny_options())).train()
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"model {name!r}: a model of its tiny config cannot be built: {one_line(exc)}") from None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def tiny_batch(model: Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] and their classes (in range for a conditional model), as a training batch holds them."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(TINY_BATCH, *model.config.image_shape, generator=generator)
    labels = torch.arange(TINY_BATCH) % (model.capabilities.num_classes or 1)
    return images, labels


def check_codes(name: str, model: Generator) -> None:
    """Every code is flat: ``latent_shape`` is ``(latent_dim,)`` and ``prior``, ``encode`` and ``posterior`` return
    ``(N, latent_dim)``."""
    capabilities, flat = model.capabilities, (TINY_BATCH, model.config.latent_dim)
    if tuple(capabilities.latent_shape) != flat[1:]:
        raise UserError(
            f"model {name!r}: latent_shape must be (latent_dim,) = {flat[1:]}, got {capabilities.latent_shape}"
        )
    images, labels = tiny_batch(model)
    kwargs = model.label_kwargs(labels)
    codes = {"prior(n)": lambda: model.prior(TINY_BATCH)}
    if capabilities.encoder:
        codes["encode(x)"] = lambda: model.encode(images, **kwargs)
    if capabilities.posterior:
        codes["posterior(x)[0] (mu)"] = lambda: model.posterior(images, **kwargs)[0]
        codes["posterior(x)[1] (logvar)"] = lambda: model.posterior(images, **kwargs)[1]
    with torch.no_grad():
        for call, code in codes.items():
            shape = tuple(attempt(name, call, code).shape)
            if shape != flat:
                raise UserError(f"model {name!r}: {call} must return flat codes (N, latent_dim) = {flat}, not {shape}")


def attempt(name: str, call: str, run):
    try:
        return run()
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"model {name!r}: {call} fails on a tiny model: {one_line(exc)}") from None


def required_history_columns(model: Generator) -> dict[str, str]:
    """Column -> the declaration that needs it in every training step's logs."""
    capabilities = model.capabilities
    columns = {capabilities.objective: f"objective = {capabilities.objective!r}"}
    if capabilities.rate_distortion:
        columns.update(kl="logs_rate_distortion", recon="logs_rate_distortion")
    if capabilities.discriminator:
        columns.update(d_real="has_discriminator", d_fake="has_discriminator")
    return columns


def check_history_columns(name: str, model: Generator) -> None:
    """One training step on a tiny batch logs a finite number in every column the model's declarations need."""
    batch = tiny_batch(model)
    optimizers = attempt(name, "configure_optimizers", lambda: model.configure_optimizers(TrainConfig()))
    logs = attempt(name, "training_step", lambda: model.training_step(batch, optimizers))
    for column, declaration in required_history_columns(model).items():
        value = logs.get(column) if isinstance(logs, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(
                f"model {name!r} declares {declaration}, so every training step must log a number under {column!r}; "
                f"a step on a tiny model logged {value!r}"
            )
