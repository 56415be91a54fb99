"""The metric sanity panel: every sample metric on real images and on corrupted copies of them.

It calibrates the yardstick in front of the student: the held-out test images (the baseline row — what a
perfect generator would score), blurred, noisy and salt-and-peppered copies (quality), only half the classes
or a single class (coverage), ten images repeated (collapse), and training images themselves (copying). Each
row is scored against the same reference as a run's samples, by ``scoring.score_samples``.

A data set with known factors (sprites) also gets the disentanglement metrics' known answers
(``FACTOR_CASES``): the true factors as the code (high), the factors of other images (shuffled: about 0) and
noise (about 0; the FactorVAE score at chance, 1 / number of factors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms.functional import gaussian_blur

from .features import get_extractor, require_labels
from .scoring import build_reference, score_samples, subset

NOISE_STD = 0.2
SALT_PEPPER = 0.1
REPEATED = 10


@dataclass(frozen=True)
class Case:
    name: str
    meaning: str
    make: Callable  # (data, n, generator) -> images in [0, 1], or None when the dataset cannot make it


def _heldout(data, n: int, gen=None) -> torch.Tensor:
    return data.test.images[subset(len(data.test), min(n, len(data.test)))].float() / 255


def _blur(sigma: float):
    size = 2 * int(3 * sigma + 0.5) + 1
    return lambda data, n, gen: gaussian_blur(_heldout(data, n), [size, size], [sigma, sigma])


def _noise(data, n, gen):
    images = _heldout(data, n)
    return (images + NOISE_STD * torch.randn(images.shape, generator=gen)).clamp(0, 1)


def _salt_and_pepper(data, n, gen):
    images = _heldout(data, n)
    hit = torch.rand(images.shape, generator=gen) < SALT_PEPPER
    return torch.where(hit, (torch.rand(images.shape, generator=gen) < 0.5).float(), images)


def _classes(keep: Callable[[torch.Tensor, int], torch.Tensor]):
    def make(data, n, gen):
        if data.test.labels is None:
            return None
        images = data.test.images[keep(data.test.labels, data.num_classes)]
        return images[subset(len(images), min(n, len(images)))].float() / 255

    return make


def _repeated(data, n, gen):
    images = _heldout(data, n)
    return images[:REPEATED].repeat((len(images) + REPEATED - 1) // REPEATED, 1, 1, 1)[: len(images)]


def _training(data, n, gen):
    """The first training images of the reference's own fixed subset: the samples of a pure copier."""
    return data.train.images[subset(len(data.train), min(n, len(data.test), len(data.train)))].float() / 255


CASES = (
    Case("held-out (baseline)", "the uncorrupted test images: what a perfect generator scores", _heldout),
    Case("blur σ=1", "Gaussian blur, σ = 1 px: lower quality", _blur(1.0)),
    Case("blur σ=2", "Gaussian blur, σ = 2 px: much lower quality", _blur(2.0)),
    Case("noise σ=0.2", f"additive Gaussian noise, σ = {NOISE_STD}", _noise),
    Case("salt & pepper 10%", f"{SALT_PEPPER:.0%} of pixels set to black or white", _salt_and_pepper),
    Case(
        "half the classes",
        "only the first half of the classes, rounded up (5 of 10 digits, 2 of 3 shapes): lower coverage and recall",
        _classes(lambda y, c: y < (c + 1) // 2),
    ),
    Case("one class", "only class 0: one mode", _classes(lambda y, c: y == 0)),
    Case(f"{REPEATED} images repeated", "ten test images repeated: collapse", _repeated),
    Case("training images", "the training images themselves: copying", _training),
)


def sanity_panel(
    dataset: str = "mnist5k",
    *,
    n: int = 5000,
    bootstrap: int = 200,
    cache_dir=None,
    progress: Callable[[float, str], None] | None = None,
) -> list[dict]:
    """One row per case (see CASES): the sample metrics of the corrupted images against a reference of up to
    ``n`` training images. Cases the dataset cannot make (class subsets without labels) are left out."""
    from generators.data import load_dataset

    from .features import DEFAULT_CACHE_DIR

    data = load_dataset(dataset)
    require_labels(data)
    net = get_extractor(dataset, data.image_shape, cache_dir=cache_dir or DEFAULT_CACHE_DIR, data=data)
    reference = build_reference(net, data, n)
    rows = []
    for i, case in enumerate(CASES):
        if progress:
            progress(i / len(CASES), case.name)
        images = case.make(data, n, torch.Generator().manual_seed(i))
        if images is None or len(images) <= 5:
            continue
        feats, logits = net.features_and_logits(images)
        scores = score_samples(reference, images, feats, logits, seed=0, bootstrap=bootstrap, what=case.name)
        rows.append(
            {
                "case": case.name,
                "meaning": case.meaning,
                "dataset": data.name,
                "extractor_id": net.id,
                "n_real": reference.n_real,
                "n_fake": len(images),
                "fid_floor": reference.floor,
                "bootstrap": bootstrap,
                **scores,
            }
        )
    if getattr(data, "factors", None) is not None:
        rows += factor_rows(data, n=n, bootstrap=bootstrap)
    return rows


FACTOR_CASES = {
    "factors as codes": "the true factors (value indices scaled to unit spread, + 1 % noise): a perfect code",
    "shuffled factors": "the factors of other images: as informative as noise (≈ 0; FactorVAE score at chance, "
    "1 / number of factors)",
    "noise codes": "Gaussian noise, one dimension per factor: no information (≈ 0; FactorVAE score at chance)",
}


def factor_rows(data, *, n: int = 5000, bootstrap: int = 200, seed: int = 0) -> list[dict]:
    """The disentanglement metrics of codes with known answers (``FACTOR_CASES``), on up to ``n`` images' factors
    (the test split first, then the train split)."""
    import numpy as np

    from .disentanglement import FactorSource, disentanglement_scores

    spec = data.factors
    factors = torch.cat([data.test.factors, data.train.factors])[:n].numpy()
    spread = np.maximum(np.asarray(spec.sizes, dtype=np.float64), 2) / np.sqrt(12)
    rng = np.random.default_rng(seed)
    makers = {
        "factors as codes": lambda f: f / spread + rng.normal(0, 0.01, f.shape),
        "shuffled factors": lambda f: f[rng.permutation(len(f))] / spread,
        "noise codes": lambda f: rng.normal(size=f.shape),
    }
    rows = []
    for case, make in makers.items():
        scores = disentanglement_scores(
            make(factors), factors, spec.sizes, lambda f, _, make=make: make(f), FactorSource(spec.sizes),
            bootstrap=bootstrap, seed=seed,
        )  # fmt: skip
        rows.append(
            {
                "case": case,
                "meaning": FACTOR_CASES[case],
                "dataset": data.name,
                "n_fake": len(factors),
                "bootstrap": bootstrap,
                "codes_method": "known answer",
                **scores,
            }
        )
    return rows
