"""Scores for every generator with one yardstick: FID (with its real-vs-real floor and a held-out reference),
KID, PRDC with 95 % bootstrap intervals, copy rate, mode counts, reconstruction (encode-decode or latent
inversion), VAE likelihood bounds, sharpness and latent smoothness; every row carries its protocol."""

from .protocol import compare_protocols
from .runner import evaluate_run, load_metrics
from .store import is_current

__all__ = ["compare_protocols", "evaluate_run", "is_current", "load_metrics"]
