"""The test suite. A package, so that `tests.helpers` is ours even where an installed distribution ships
its own top-level `tests` (torch-fidelity 0.4 does)."""
