"""Scores of class-conditional models: does a sample show the class it was asked for, and is every class's
distribution right? Pure functions of images, labels and features; the caller draws the samples.

- label accuracy: the share of samples that the project's classifier (the feature extractor) puts in the
  requested class, overall and per class;
- Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier trained on samples and their requested
  labels only, tested on real held-out images. The same classifier trained on the real train split is the
  ceiling. Unlike label accuracy, CAS also drops when a class's samples lack its variety (a classifier trained
  on one prototype per class misses the real digits that look different);
- intra-class FID: FID of each class's samples against that class's real images, and their mean, beside the
  real-vs-real floor per class (two halves of the class's real images).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from generators.checkpoints import atomic_write_bytes, read_json_file
from generators.errors import UserError

from .features import DEFAULT_EPOCHS, DEFAULT_WIDTH, accuracy, train_classifier
from .fid import frechet_distance


def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as given; float images in [0, 1] rounded to uint8, as a saved sample would be."""
    if images.dtype == torch.uint8:
        return images
    return images.clamp(0, 1).mul(255).round().to(torch.uint8)


def label_accuracy(classifier, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """``label_accuracy``: the share of ``images`` (float in [0, 1]) that ``classifier.classify`` puts in their
    requested class ``labels``; ``label_accuracy_per_class``: the same per class (None for a class not asked for).
    """
    labels = torch.as_tensor(labels).cpu()
    correct = classifier.classify(images).cpu() == labels
    per_class = [
        correct[labels == k].float().mean().item() if (labels == k).any() else None for k in range(num_classes)
    ]
    return {"label_accuracy": correct.float().mean().item(), "label_accuracy_per_class": per_class}


def classification_accuracy_score(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    *,
    epochs: int = DEFAULT_EPOCHS,
    width: int = DEFAULT_WIDTH,
    seed: int = 0,
) -> float:
    """Test accuracy of the extractor's classifier recipe (``features.train_classifier``) trained on
    ``train_images`` with ``train_labels`` only. CAS: generated images + the labels they were drawn for; the
    ceiling: the real train split. Images are uint8 or float in [0, 1]; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        net = train_classifier(
            _as_uint8(train_images), torch.as_tensor(train_labels), num_classes, epochs=epochs, width=width, seed=seed
        )
    return accuracy(net, _as_uint8(test_images), torch.as_tensor(test_labels))


def cas_ceiling(data, num_classes: int, *, epochs: int = DEFAULT_EPOCHS, cache_dir=None) -> float:
    """CAS of the real train split (the ceiling). It depends on the data and the recipe only, so it is trained
    once and kept in ``cache_dir`` (beside the extractor), keyed by a hash of both: every later conditional row
    of that dataset reuses it instead of training the same classifier again (half a conditional evaluation)."""
    train, test = data.train, data.test
    key = hashlib.sha256(json.dumps([data.name, num_classes, epochs, DEFAULT_WIDTH]).encode())
    for tensor in (train.images, train.labels, test.images, test.labels):
        key.update(tensor.contiguous().numpy().tobytes())
    path = Path(cache_dir) / f"cas-ceiling-{data.name}-{key.hexdigest()[:16]}.json" if cache_dir else None
    if path is not None and path.is_file():
        try:
            stored = read_json_file(path, max_bytes=1000)
            if isinstance(stored, dict) and isinstance(stored.get("cas_ceiling"), float):
                if 0 <= stored["cas_ceiling"] <= 1:
                    return stored["cas_ceiling"]
        except UserError:
            pass  # unreadable or not ours: trained again and replaced below
    ceiling = classification_accuracy_score(
        train.images, train.labels, test.images, test.labels, num_classes, epochs=epochs
    )
    if path is not None and math.isfinite(ceiling):
        try:
            atomic_write_bytes(path, json.dumps({"cas_ceiling": ceiling}).encode())
        except OSError:
            pass  # a read-only cache only costs the next evaluation this training again
    return ceiling


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def intra_class_fid(
    real_feats: torch.Tensor,
    real_labels: torch.Tensor,
    fake_feats: torch.Tensor,
    fake_labels: torch.Tensor,
    num_classes: int,
) -> dict:
    """``intra_fid_per_class``: FID of each class's fake features against its real ones (None when either side
    has fewer than 2); ``intra_fid``: their mean over the classes that have one."""
    per_class = []
    for k in range(num_classes):
        real, fake = real_feats[real_labels == k], fake_feats[fake_labels == k]
        per_class.append(frechet_distance(real, fake) if min(len(real), len(fake)) >= 2 else None)
    return {"intra_fid": _mean(per_class), "intra_fid_per_class": per_class}


def intra_class_fid_floor(real_feats: torch.Tensor, real_labels: torch.Tensor, num_classes: int, seed: int = 0) -> dict:
    """``intra_fid_floor_per_class``: FID between two disjoint random halves of each class's real features (what a
    perfect model scores, at half the class's size: FID is biased upwards at small n, so this floor is a little
    higher than one at the full size); ``intra_fid_floor``: their mean."""
    generator = torch.Generator().manual_seed(seed)
    per_class = []
    for k in range(num_classes):
        feats = real_feats[real_labels == k]
        half = len(feats) // 2
        order = torch.randperm(len(feats), generator=generator)
        per_class.append(frechet_distance(feats[order[:half]], feats[order[half : 2 * half]]) if half >= 2 else None)
    return {"intra_fid_floor": _mean(per_class), "intra_fid_floor_per_class": per_class}


@torch.inference_mode()
def draw_conditional(model, draw, labels: torch.Tensor, generator: torch.Generator, batch: int = 1000) -> torch.Tensor:
    """Images of a conditional model for the given ``labels``, latents from ``draw(n, generator)`` (a sampler
    of ``generators.samplers.latent_sampler``), in batches, on the CPU, in [0, 1]."""
    parts = []
    for start in range(0, len(labels), batch):
        part = labels[start : start + batch]
        parts.append(model.decode(draw(len(part), generator), part.to(model.device)).clamp(0, 1).cpu())
    return torch.cat(parts)


def conditional_scores(
    model, data, classifier, draw, *, n: int, seed: int = 0, cas_epochs: int = DEFAULT_EPOCHS, cache_dir=None
) -> dict:
    """Every score above for a loaded conditional ``model`` whose dataset is ``data`` (``ImageData``), judged by
    the project's ``classifier`` (the feature extractor): ``n`` samples with classes in equal shares, latents from
    ``draw``, generated from ``seed``. Reference: the train split (intra-class FID and its floor; the CAS ceiling
    is trained on it, once per ``cache_dir``); CAS and its ceiling are tested on the test split."""
    num_classes = model.capabilities.num_classes
    labels = model.labels_for(n).cpu()
    fake = draw_conditional(model, draw, labels, torch.Generator().manual_seed(seed))
    fake_feats, _ = classifier.features_and_logits(fake)
    real_feats, _ = classifier.features_and_logits(data.train.float_images())
    test = data.test
    return {
        "n_fake": n,
        **label_accuracy(classifier, fake, labels, num_classes),
        "cas": classification_accuracy_score(fake, labels, test.images, test.labels, num_classes, epochs=cas_epochs),
        "cas_ceiling": cas_ceiling(data, num_classes, epochs=cas_epochs, cache_dir=cache_dir),
        **intra_class_fid(real_feats, data.train.labels, fake_feats, labels, num_classes),
        **intra_class_fid_floor(real_feats, data.train.labels, num_classes, seed=seed),
    }
