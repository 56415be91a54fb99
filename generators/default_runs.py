"""The committed default runs (made by ``make checkpoints``; recipes in checkpoints/README.md), defined once.

The dashboard selects these first, the benchmarks measure their recipes, and the first-run button of an empty
dashboard trains ``FIRST_RUN_MODEL`` into ``FIRST_RUN_NAME``.
"""

DEFAULT_RUNS = ("vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k")
FIRST_RUN_MODEL = "vae"
FIRST_RUN_NAME = "vae-mnist5k"
