"""Fixtures shared by the reliability suite: one tiny trained VAE per module, and a fresh copy of it per test."""

from __future__ import annotations

import shutil

import pytest

from .support import make_image_folder, train_tiny


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(image folder, run folder) of a 2-step VAE trained on a tiny labelled image folder; never modify it."""
    root = tmp_path_factory.mktemp("made")
    images = make_image_folder(root / "images")
    train_tiny(images, "vae", root / "run", 2)
    return images, root / "run"


@pytest.fixture
def run(made, tmp_path):
    """A copy of ``made``'s run that a test may damage."""
    shutil.copytree(made[1], tmp_path / "run")
    return tmp_path / "run"
