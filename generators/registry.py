"""Model name -> class. Adding a model is one new file and one line in ``MODELS`` below.

Models defined outside this package (a course's own model, a test's) are added with ``register(name, cls)``
at runtime, or by naming the modules that call it in the environment variable ``GENLAB_PLUGINS``
(comma-separated module names on the Python path), which ``python -m generators``, ``python -m evaluation``,
``python -m benchmarks`` and ``streamlit run app.py`` import at start (``load_plugins``), so all of them know
the models; the dashboard's training processes inherit the variable.
"""

from __future__ import annotations

import dataclasses
import importlib
import os

from .autoencoder import Autoencoder
from .base import Generator, ModelConfig
from .cdcgan import CDCGAN
from .conventions import check_conventions
from .cvae import CVAE
from .dcgan import DCGAN
from .errors import UserError
from .vae import VAE

PLUGINS_ENV = "GENLAB_PLUGINS"

MODELS: dict[str, type[Generator]] = {
    "vae": VAE,
    "ae": Autoencoder,
    "dcgan": DCGAN,
    "cvae": CVAE,
    "cdcgan": CDCGAN,
}


def check_model_class(name: str, cls: type) -> None:
    """Refuse, with one line, a class that could not be built from a stored config or the command line, or that
    breaks a convention of the capabilities it declares (``generators.conventions``)."""
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise UserError(f"model {name!r}: {cls!r} is not a subclass of generators.base.Generator")
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, ModelConfig) and dataclasses.is_dataclass(config)):
        raise UserError(f"model {name!r}: its Config must be a dataclass subclass of generators.base.ModelConfig")
    missing = [
        f.name
        for f in dataclasses.fields(config)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"model {name!r}: config field(s) {', '.join(missing)} need a default value")
    if not isinstance(getattr(cls, "title", None), str) or not cls.title:
        raise UserError(f"model {name!r}: the class needs a display title (title = '...')")
    check_conventions(name, cls)


def register(name: str, cls: type[Generator]) -> type[Generator]:
    """Add a model under ``name``; a name that is taken, or a class that breaks the interface, is refused."""
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ \n\t"):
        raise UserError(f"a model name must be a plain word, got {name!r}")
    if name in MODELS:
        raise UserError(f"model {name!r} is already registered (by {MODELS[name].__module__}); pick another name")
    check_model_class(name, cls)
    cls.name = name
    MODELS[name] = cls
    return cls


def load_plugins() -> None:
    """Import the modules named in ``GENLAB_PLUGINS`` (once each); each registers its models on import."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UserError(f"{PLUGINS_ENV} names {module!r}, which cannot be imported: {exc}") from None


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


def capabilities_of(info: dict):
    """The capabilities of the run described by ``info`` (its stored config), without loading weights."""
    cls = model_class(info["model"])
    return cls.capabilities_for(cls.Config.from_dict(info["model_config"]))


def command_line_options(name: str, model_config: dict) -> dict:
    """The options of a stored ``model_config`` that ``train`` takes on its command line (not the image shape, nor
    what the harness sets from the data, such as a conditional model's number of classes): what retrains it."""
    offered = {f.name for f in dataclasses.fields(model_class(name).Config) if f.metadata.get("cli", True)}
    return {key: value for key, value in model_config.items() if key in offered and key != "image_shape"}
