"""The dashboard's tabs in page order: (title, render function). app.py draws them; the tests and the browser
benchmark read their titles from here."""

from . import anatomy, interpolation, latent, metrics, reconstruction, report, samples, sanity, sweep, training

TABS = (
    ("Samples", samples.render),
    ("Interpolation", interpolation.render),
    ("Latent space", latent.render),
    ("VAE anatomy", anatomy.render),
    ("Reconstruction", reconstruction.render),
    ("Metrics", metrics.render),
    ("Sanity & copying", sanity.render),
    ("Train", training.render),
    ("Sweeps", sweep.render),
    ("Findings & report", report.render),
)
TAB_TITLES = tuple(title for title, _ in TABS)
