"""Scores for every generator with one yardstick: FID (with its real-vs-real floor and a held-out reference),
KID, PRDC with 95 % bootstrap intervals, copy rate, mode counts, reconstruction (encode-decode or latent
inversion), VAE likelihood bounds, sharpness and latent smoothness; every row carries its protocol.

The public names are imported on first use, so a module that needs only ``evaluation.diagnostics`` or
``evaluation.metric_specs`` (the dashboard's first page) does not pay for torchmetrics and scipy at start.
"""

import importlib

_PUBLIC = {
    "compare_protocols": "protocol",
    "evaluate_run": "runner",
    "is_current": "store",
    "load_metrics": "store",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
