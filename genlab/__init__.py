"""genlab — the VAE vs GAN generator lab from Python (a notebook, a script).

    import genlab

    vae = genlab.train("vae", steps=300, run="my-vae", out_dir="runs")       # -> Run (the folder runs/my-vae)
    gan = genlab.load("checkpoints/dcgan-mnist5k")                          # -> Run
    images = vae.sample(64, sampler="prior", seed=0)                         # uint8 array (N, C, H, W), 0..255
    table = genlab.evaluate([vae, gan], n=1000)                              # pandas.DataFrame, one row per run
    genlab.findings([vae, gan])                                              # the textbook claims, tested
    genlab.figures([vae, gan])["fid"]                                        # the report's plotly figures
    genlab.report([vae, gan], "report.zip")                                  # the dashboard's report zip

Every function checks its arguments as the command line does, with the same one-line messages: bad input raises
``genlab.UserError`` (``generators.errors.UserError``), never a traceback from deep inside. The functions are
those of the command line and the dashboard (``python -m generators``, ``python -m evaluation``): a run trained
here is a run folder like any other, scored, compared and reported the same way.
"""

from __future__ import annotations

import importlib

from generators.errors import UserError

_API = ("Run", "Findings", "train", "load", "evaluate", "findings", "figures", "report")
__all__ = [*_API, "UserError"]


def __getattr__(name: str):
    """The API is imported on first use: ``genlab --help`` (``genlab.cli``) never waits for torch."""
    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
