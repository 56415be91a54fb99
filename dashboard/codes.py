"""The encoded test split of a run, shared by the tabs that show or probe its latent space."""

from __future__ import annotations

import numpy as np
import torch

from evaluation.features import extractor_path, load_extractor
from evaluation.runs import EXTRACTORS_FOLDER

from .state import Run, checkpoints_dir, class_kwargs, per_run_cache, run_dataset

MAP_POINTS = 1000  # test images encoded for the maps (and the spread of an autoencoder's codes)


@per_run_cache
@torch.inference_mode()
def encoded_test_split(run: Run) -> tuple[np.ndarray, torch.Tensor, np.ndarray | None]:
    """Codes (N, d), images and labels of up to ``MAP_POINTS`` test images."""
    split = run_dataset(run).test
    count = min(len(split), MAP_POINTS)
    images, labels = split[list(range(count))]
    codes = run.model().encode(images, **class_kwargs(run, labels)).cpu().numpy()
    return codes, images, (labels.numpy() if split.labels is not None else None)


def prior_scale_note(run: Run, what: str) -> str | None:
    """For a model with an encoder but no KL term (the plain autoencoder): how far its codes spread beyond the
    N(0, I) that ``what`` (a random interpolation, a traversal) is drawn from; None for every other model."""
    if not run.capabilities.encoder or run.capabilities.posterior:
        return None
    spread = float(np.std(encoded_test_split(run)[0], axis=0).mean())
    return (
        f"{run.label}: nothing ties this model's codes to N(0, I) (it has no KL term), and its test images' codes "
        f"spread with a standard deviation of {spread:.1f} per dimension (N(0, I): 1). {what} stays within a small "
        "region of its latent space, where it may decode nearly the same image throughout: a view of that region, "
        "not of the space between its images."
    )


@per_run_cache
def trained_classifier(run: Run):
    """The evaluation's classifier of the run's data set if scoring has trained it (a run's metrics train it once),
    else None: a page never trains one behind the user's back."""
    data = run_dataset(run)
    if data.test.labels is None:
        return None
    path = extractor_path(checkpoints_dir() / EXTRACTORS_FOLDER, run.info["dataset"], data.image_shape)
    sizes = tuple(data.factors.sizes) if data.factors is not None else ()
    return load_extractor(path, sizes) if path.is_file() else None
