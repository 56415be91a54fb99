"""Scores for every generator with one yardstick: FID (with its real-vs-real floor), KID, PRDC, mode counts,
reconstruction (encode-decode or latent inversion), VAE likelihood bounds, sharpness and latent smoothness."""

from .runner import evaluate_run, load_metrics

__all__ = ["evaluate_run", "load_metrics"]
