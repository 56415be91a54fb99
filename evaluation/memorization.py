"""Memorization: does the model hand back its training images?

``copy_rate`` is the share of generated images whose nearest training image (in the extractor's feature
space) is closer than the 5th percentile of the held-out real images' nearest-training distances. Held-out
images are new to the training set by construction, so a model that does not copy scores about 0.05 and one
that copies its training images scores near 1. ``nearest_gallery`` gives the data of the nearest-neighbour
gallery (each sample's closest training images) that the dashboard and the report show.
"""

from __future__ import annotations

import torch

COPY_QUANTILE = 0.05
CHUNK = 1000


def nearest_train(query: torch.Tensor, train: torch.Tensor, k: int = 1, chunk: int = CHUNK):
    """(distances, indices), each (N, k): the k nearest training features of each query feature, nearest first.

    The neighbours are found with float32 distances (fast, matrix-product based); their distances are then
    recomputed in float64, because float32 puts an exact copy about 1e-3 away instead of 0."""
    k = min(k, len(train))
    indices = torch.cat(
        [torch.cdist(part.float(), train.float()).topk(k, dim=1, largest=False).indices for part in query.split(chunk)]
    )
    distances = (query.double().unsqueeze(1) - train.double()[indices]).norm(dim=-1)
    order = distances.argsort(dim=1)
    return distances.gather(1, order), indices.gather(1, order)


def copy_threshold(heldout_feats: torch.Tensor, train_feats: torch.Tensor, quantile: float = COPY_QUANTILE) -> float:
    """The ``quantile`` of the held-out images' distances to their nearest training image."""
    distances = nearest_train(heldout_feats, train_feats)[0][:, 0]
    return torch.quantile(distances.double(), quantile).item()


def copy_rate(fake_feats: torch.Tensor, train_feats: torch.Tensor, threshold: float) -> float:
    """Share of samples closer to a training image than ``threshold`` (see ``copy_threshold``)."""
    return (nearest_train(fake_feats, train_feats)[0][:, 0] < threshold).double().mean().item()


def nearest_gallery(samples: torch.Tensor, train_images: torch.Tensor, extractor, k: int = 3) -> list[dict]:
    """For each sample image, the indices (into ``train_images``) and feature distances of its ``k`` nearest
    training images, nearest first."""
    sample_feats = extractor.features_and_logits(samples)[0]
    train_feats = extractor.features_and_logits(train_images.float() / 255)[0]
    distances, indices = nearest_train(sample_feats, train_feats, k)
    return [{"indices": i.tolist(), "distances": d.tolist()} for i, d in zip(indices, distances)]
