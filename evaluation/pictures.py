"""Pictures of samples: one run's sample grid (the same seed gives the same latents to every run of one latent
size), the labelled figure of every run's grid side by side, and each run's samples beside their nearest
training images (the memorization gallery). The dashboard draws them; the report zip exports the same ones.

``Run`` records supply the slow parts (``run.model()``, ``run.dataset()``, ``run.sample_images``,
``run.gallery``), so a caller with caches (the dashboard) serves them from its caches.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from generators.samplers import latent_sampler

from .figures import image_panels
from .images import png_bytes, to_pil

ONE_ROW_PER_CLASS = "one row per class"
DEFAULT_SAMPLER = "prior"
GALLERY_SAMPLES = 8
GALLERY_NEIGHBOURS = 3
GRID_SCALE = 2  # the report's grids and figures enlarge each pixel twice


def class_layout(run, n: int, choice: str) -> tuple[torch.Tensor | None, int]:
    """The labels to condition ``n`` samples on and the grid's row length: None and a square grid for an
    unconditional run; ``choice`` = ONE_ROW_PER_CLASS or a class index (as text) for a conditional one."""
    classes = run.capabilities.num_classes
    if classes is None:
        return None, math.isqrt(n)
    if choice == ONE_ROW_PER_CLASS:
        per_class = max(1, n // classes)
        return torch.arange(classes).repeat_interleave(per_class), per_class
    return torch.full((n,), int(choice) % classes), math.isqrt(n)


@torch.inference_mode()
def sample_images(run, n: int, seed: int, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS):
    """Samples in [0, 1] and the grid's row length; the latents come from ``seed`` alone, so equal latent sizes
    share the same z (prior). A conditional run draws the classes of ``choice``."""
    model = run.model()
    draw = latent_sampler(model, sampler, run.run_dir, lambda: run.dataset().train.float_images())
    labels, nrow = class_layout(run, n, choice)
    generator = torch.Generator().manual_seed(int(seed))
    if labels is None:
        return model.decode(draw(n, generator)).clamp(0, 1).cpu(), nrow
    return model.decode(draw(len(labels), generator), labels.to(model.device)).clamp(0, 1).cpu(), nrow


def sample_picture(run, n: int, seed: int, scale: int, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS):
    """The run's sample grid as a PIL picture, enlarged ``scale`` times."""
    images, nrow = run.sample_images(n, seed, sampler, choice)
    return to_pil(images, nrow=nrow, scale=scale)


def sample_grid_png(
    run, n: int, seed: int, scale: int = 1, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS
) -> bytes:
    """The PNG of one run's sample grid."""
    return png_bytes(sample_picture(run, n, seed, scale, sampler, choice))


def draws_count(run, n: int, choice: str) -> int:
    """How many images ``run``'s grid holds: ``n``, or a whole number of rows per class for a conditional run."""
    labels, _ = class_layout(run, n, choice)
    return n if labels is None else len(labels)


def draws_caption(runs, n: int, choice: str) -> str:
    """ "64 draws from each model", or what each run really shows when one row per class rounds ``n`` down."""
    counts = {run.label: draws_count(run, n, choice) for run in runs}
    if len(set(counts.values())) == 1:
        return f"{next(iter(counts.values()))} draws from each model"
    return "draws per model: " + ", ".join(f"{label} {count}" for label, count in counts.items())


def samples_figure(runs, n: int, seed: int, sampler: str = DEFAULT_SAMPLER, choice: str = ONE_ROW_PER_CLASS):
    """One labelled figure: a column per run, the same seed (and latents, where the sizes match)."""
    panels = [(run.label, np.asarray(sample_picture(run, n, seed, GRID_SCALE, sampler, choice))) for run in runs]
    return image_panels(panels, f"Samples ({sampler} sampler, seed {seed}, {draws_caption(runs, n, choice)})")


def gallery(run, seed: int, cache_dir) -> tuple[torch.Tensor, list[dict], torch.Tensor]:
    """Samples, their nearest training images' rows, and the training images they point into (features by the
    run's extractor, cached in ``cache_dir``)."""
    from .runner import run_gallery

    images, train, rows = run_gallery(
        run.run_dir, samples=GALLERY_SAMPLES, k=GALLERY_NEIGHBOURS, seed=seed, cache_dir=cache_dir
    )
    return images, rows, train


def gallery_array(run, seed: int, cache_dir) -> np.ndarray:
    """Rows = samples; columns = the sample, then its nearest training images (nearest first)."""
    from torchvision.utils import make_grid

    images, rows, train = run.gallery(seed, cache_dir)
    tiles = []
    for image, row in zip(images, rows):
        tiles.append(image)
        tiles += [train[i].float() / 255 for i in row["indices"]]
    grid = make_grid(torch.stack(tiles), nrow=1 + GALLERY_NEIGHBOURS, padding=2, pad_value=1.0)
    array = grid.mul(255).round().clamp(0, 255).to(torch.uint8)
    return array[0].numpy() if images.shape[1] == 1 else array.permute(1, 2, 0).numpy()


def gallery_figure(runs, seed: int, cache_dir):
    """Every run's gallery in one labelled figure, at most four panels a row."""
    panels = [(run.label, gallery_array(run, seed, cache_dir)) for run in runs]
    return image_panels(
        panels,
        f"Samples (left column) beside their {GALLERY_NEIGHBOURS} nearest training images (feature space), seed {seed}",
        columns=min(len(panels), 4),
    )
