"""Disentanglement metrics: how well a latent code lines up with a data set's known generative factors.

Inputs are ``codes`` (N, D) floats and ``factors`` (N, K) integer value indices with ``sizes`` (values per factor).

- **MIG** (Chen et al. 2018): each code dimension is cut into ``MIG_BINS`` = 20 equal-width bins spread between
  its 0.5 % and 99.5 % quantiles (codes beyond them go to the end bins, so a few outliers cannot squeeze the rest
  into one bin; a constant dimension is one bin and carries no information); factors are discrete as given.
  For each factor, the gap between the two largest plug-in mutual informations I(code_j; factor) divided
  by the factor's entropy; MIG is the mean over factors. With 20 bins a perfect code cannot exceed
  0.85 on a factor of 32 values (bins of 1 or 2 values) and log 20 / log 40 = 0.81 on one of 40, so a perfect
  dSprites code scores ≈ 0.90.
- **DCI** (Eastwood & Williams 2018): per factor, extremely randomised trees (scikit-learn's ExtraTreesRegressor:
  CPU-cheap, no linearity assumed) predict the factor's value index from the standardised code on two thirds of
  the images; their impurity importances form the D × K matrix R. Disentanglement: 1 − the entropy (base K) of
  each code dimension's row of R, weighted by the row's share of R; completeness: 1 − the entropy (base D) of
  each factor's column, averaged; informativeness: the held-out R² (clipped to [0, 1]) of the factors predicted
  by k-nearest-neighbour regression (k = 10, Euclidean on the code scaled by one overall RMS), averaged over
  factors (1 = every factor read off the code, 0 = no better than its mean). k-NN rather than the trees for
  this part: trees split one axis at a time and read a rotated code worse, but a rotation loses no information.
- **FactorVAE score** (Kim & Mnih 2018): votes from batches with one factor held fixed (rendered on demand, or
  drawn from the images that share that factor value): the code is divided by its standard deviation over the
  data (dimensions that are constant are dropped), and the dimension of least variance in the batch votes for the
  fixed factor; a majority-vote classifier fitted on half the votes is scored on the other half (accuracy; chance
  is 1/K, not 0).
- **SAP** (Kumar et al. 2018), continuous-factor form: the squared Pearson correlation of each code dimension with
  each factor's value index; for each factor the gap between its two best dimensions; SAP is their mean.

Intervals (95 %): MIG and SAP by bootstrap over images (resampled counts, bins fixed); the FactorVAE score by
bootstrap over the votes; DCI by ``DCI_REFITS`` refits, each a small forest on its own bootstrap resample of the
training images (the estimate is the forest of all their trees, so the interval is that of a smaller forest:
on the wide side).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .bootstrap import interval

MIG_BINS = 20
MIG_RANGE = (0.005, 0.995)  # the quantiles between which the bins are spread
DCI_REFITS = 10  # bootstrap refits; each a forest of DCI_TREES trees
DCI_TREES = 2
DCI_MIN_LEAF = 10
DCI_TRAIN_FRACTION = 2 / 3
DCI_NEIGHBOURS = 10
VOTE_BATCH = 32  # images per FactorVAE vote (L)
VOTES = 250  # votes to fit the majority classifier, and as many to score it
KEYS = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "factor_vae_score", "sap")


# --- MIG ---------------------------------------------------------------------------------------------------------


def discretize(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """Each column cut into ``bins`` equal-width bins between its ``MIG_RANGE`` quantiles, values beyond them in the
    end bins (int (N, D)): equal width as Chen et al., robust to a few outlying codes; a constant column is one
    bin."""
    codes = np.asarray(codes, dtype=np.float64)
    low, high = np.quantile(codes, MIG_RANGE, axis=0)
    width = np.where(high > low, (high - low) / bins, 1.0)
    return np.clip(np.floor((codes - low) / width), 0, bins - 1).astype(np.int64)


def _entropy(counts: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the distributions in the last axis of ``counts``."""
    total = counts.sum(-1, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts, dtype=np.float64), where=total > 0)
    return -(p * np.log(np.where(p > 0, p, 1))).sum(-1)


def mutual_information(binned: np.ndarray, factors: np.ndarray, sizes, weights: np.ndarray | None = None):
    """(D, K) plug-in mutual information (nats) of each binned code dimension with each factor, and (K,) the
    factors' entropies; ``weights``: per-image counts (a bootstrap resample)."""
    n, dims = binned.shape
    weights = np.ones(n) if weights is None else weights
    bins = int(binned.max(initial=0)) + 1
    mi = np.zeros((dims, len(sizes)))
    h_factor = np.zeros(len(sizes))
    for k, size in enumerate(sizes):
        f = factors[:, k]
        for j in range(dims):
            joint = np.bincount(binned[:, j] * size + f, weights=weights, minlength=bins * size).reshape(bins, size)
            h_code, h_f = _entropy(joint.sum(1)), _entropy(joint.sum(0))
            mi[j, k] = max(h_code + h_f - _entropy(joint.reshape(1, -1))[0], 0.0)
            h_factor[k] = h_f
    return mi, h_factor


def mig_from_mi(mi: np.ndarray, h_factor: np.ndarray) -> float:
    top = -np.sort(-mi, axis=0)
    second = top[1] if len(top) > 1 else np.zeros(mi.shape[1])
    keep = h_factor > 0
    return float(np.mean((top[0] - second)[keep] / h_factor[keep])) if keep.any() else math.nan


def mig(codes, factors, sizes) -> float:
    mi, h = mutual_information(discretize(codes), np.asarray(factors), sizes)
    return mig_from_mi(mi, h)


# --- SAP ---------------------------------------------------------------------------------------------------------


def _r2_matrix(codes: np.ndarray, factors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(D, K) squared (weighted) Pearson correlations; 0 where a column is constant."""
    w = np.ones(len(codes)) if weights is None else weights
    w = w / w.sum()
    x = codes - w @ codes
    y = factors - w @ factors
    cov = (x * w[:, None]).T @ y
    var_x, var_y = w @ x**2, w @ y**2
    denom = np.outer(var_x, var_y)
    return np.divide(cov**2, denom, out=np.zeros_like(cov), where=denom > 1e-24)


def sap_from_scores(scores: np.ndarray) -> float:
    top = -np.sort(-scores, axis=0)
    second = top[1] if len(top) > 1 else np.zeros(scores.shape[1])
    return float(np.mean(top[0] - second))


def sap(codes, factors) -> float:
    return sap_from_scores(_r2_matrix(np.asarray(codes, np.float64), np.asarray(factors, np.float64)))


# --- DCI ---------------------------------------------------------------------------------------------------------


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of a (D, K) importance matrix (non-negative)."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    dims, k = r.shape
    total = r.sum()
    if total <= 0:
        return 0.0, 0.0
    d_per = 1 - _entropy(r) / math.log(k) if k > 1 else np.ones(dims)
    disentanglement = float((r.sum(1) / total) @ d_per)
    c_per = 1 - _entropy(r.T) / math.log(dims) if dims > 1 else np.ones(k)
    keep = r.sum(0) > 0
    completeness = float(np.mean(np.where(keep, c_per, 0.0)))
    return disentanglement, completeness


def _r2(prediction: np.ndarray, target: np.ndarray) -> float:
    var = np.var(target)
    if var <= 0:
        return 0.0
    return float(np.clip(1 - np.mean((prediction - target) ** 2) / var, 0, 1))


def _knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int) -> np.ndarray:
    """k-nearest-neighbour regression (Euclidean, uniform weights): the mean of the k nearest training targets."""
    distance = torch.cdist(torch.from_numpy(test_x).float(), torch.from_numpy(train_x).float())
    nearest = distance.topk(k, largest=False).indices.numpy()
    return train_y[nearest].mean(1)


def dci(codes, factors, *, seed: int = 0, refits: int = DCI_REFITS, trees: int = DCI_TREES) -> dict:
    """DCI disentanglement, completeness and informativeness, each with a 95 % interval from ``refits``
    bootstrap refits (see the module's docstring)."""
    from sklearn.ensemble import ExtraTreesRegressor

    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    n, dims = codes.shape
    scale = codes.std(0)
    x = (codes - codes.mean(0)) / np.where(scale > 0, scale, 1)  # for the trees: each dimension standardised
    centred = codes - codes.mean(0)
    rms = math.sqrt(float(np.mean(centred**2)))
    x_knn = centred / (rms if rms > 0 else 1.0)  # for k-NN: one scale for all dimensions, so a rotation changes nothing
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_train = max(2, int(round(n * DCI_TRAIN_FRACTION)))
    train, test = order[:n_train], order[n_train:]
    importance = np.zeros((refits, dims, factors.shape[1]))
    predictions = np.zeros((refits, len(test), factors.shape[1]))
    for b in range(refits):
        pick = train[rng.integers(0, n_train, n_train)]
        for k in range(factors.shape[1]):
            forest = ExtraTreesRegressor(
                n_estimators=trees, min_samples_leaf=DCI_MIN_LEAF, random_state=int(rng.integers(2**31))
            )
            forest.fit(x[pick], factors[pick, k])
            importance[b, :, k] = forest.feature_importances_
        predictions[b] = _knn_predict(x_knn[pick], factors[pick], x_knn[test], min(DCI_NEIGHBOURS, n_train))

    def scores(imp: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
        informativeness = np.mean([_r2(pred[:, k], factors[test, k]) for k in range(factors.shape[1])])
        return (*dci_from_importance(imp), float(informativeness))

    estimate = scores(importance.mean(0), predictions.mean(0))
    replicates = np.array([scores(importance[b], predictions[b]) for b in range(refits)])
    out = {}
    for i, key in enumerate(("dci_disentanglement", "dci_completeness", "dci_informativeness")):
        out[key] = estimate[i]
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = interval(
            torch.from_numpy(replicates[:, i]), estimate[i], lower=0.0, upper=1.0
        )
    return out


# --- FactorVAE score ---------------------------------------------------------------------------------------------


@dataclass
class FactorSource:
    """Where batches with one factor held fixed come from: ``render`` (factor indices -> images) for a generated
    data set, else a ``pool`` of (images, factors) to draw the images sharing a factor value from; neither (only
    the factors are needed, e.g. for codes made from the factors themselves)."""

    sizes: tuple[int, ...]
    render: Callable[[np.ndarray], torch.Tensor] | None = None
    pool_images: torch.Tensor | None = None
    pool_factors: np.ndarray | None = None

    def fixed_batches(self, fixed: np.ndarray, values: np.ndarray, size: int, rng) -> tuple[np.ndarray, object]:
        """(V, size, K) factors of V batches where batch v holds factor ``fixed[v]`` at ``values[v]``, and their
        images (V·size, C, H, W) uint8, or None when there is no image source."""
        count = len(fixed)
        if self.pool_factors is None:
            f = np.stack([rng.integers(0, s, (count, size)) for s in self.sizes], -1)
            f[np.arange(count), :, fixed] = values[:, None]
            images = self.render(f.reshape(-1, len(self.sizes))) if self.render is not None else None
            return f, images
        index = np.empty((count, size), dtype=np.int64)
        for v, (k, value) in enumerate(zip(fixed, values)):
            same = np.flatnonzero(self.pool_factors[:, k] == value)
            index[v] = rng.choice(same, size)
        return self.pool_factors[index], self.pool_images[torch.from_numpy(index.reshape(-1))]

    def vote_values(self, fixed: np.ndarray, rng) -> np.ndarray:
        """A value for each fixed factor: uniform over its values (over the values the pool holds)."""
        if self.pool_factors is None:
            return np.array([rng.integers(0, self.sizes[k]) for k in fixed])
        present = [np.unique(self.pool_factors[:, k]) for k in range(len(self.sizes))]
        return np.array([rng.choice(present[k]) for k in fixed])


def factor_vae_votes(
    codes_of: Callable[[np.ndarray, object], np.ndarray],
    source: FactorSource,
    code_scale: np.ndarray,
    *,
    votes: int,
    batch: int = VOTE_BATCH,
    seed: int = 0,
) -> np.ndarray:
    """(votes, 2) pairs (dimension of least normalised variance, fixed factor). ``codes_of(factors, images)``
    gives the codes (V·L, D) of a batch; ``code_scale`` (D,): each dimension's standard deviation over the data."""
    rng = np.random.default_rng(seed)
    k = len(source.sizes)
    fixed = rng.integers(0, k, votes)
    values = source.vote_values(fixed, rng)
    factors, images = source.fixed_batches(fixed, values, batch, rng)
    codes = np.asarray(codes_of(factors.reshape(-1, k), images), dtype=np.float64).reshape(votes, batch, -1)
    active = code_scale > 1e-12
    variance = (codes[:, :, active] / code_scale[active]).var(1, ddof=1)
    return np.stack([np.flatnonzero(active)[variance.argmin(1)], fixed], 1)


def factor_vae_from_votes(train: np.ndarray, test: np.ndarray, dims: int, factors: int) -> float:
    """Accuracy on ``test`` of the majority-vote classifier (dimension -> factor) fitted on ``train``."""
    table = np.zeros((dims, factors))
    np.add.at(table, (train[:, 0], train[:, 1]), 1)
    predict = table.argmax(1)
    return float(np.mean(predict[test[:, 0]] == test[:, 1]))


def factor_vae_score(
    codes_of, source: FactorSource, code_scale, *, votes: int = VOTES, batch: int = VOTE_BATCH, seed: int = 0,
    bootstrap: int = 0,
) -> dict:  # fmt: skip
    code_scale = np.asarray(code_scale, dtype=np.float64)
    pairs = factor_vae_votes(codes_of, source, code_scale, votes=2 * votes, batch=batch, seed=seed)
    train, test = pairs[:votes], pairs[votes:]
    dims, k = len(code_scale), len(source.sizes)
    out = {"factor_vae_score": factor_vae_from_votes(train, test, dims, k)}
    if bootstrap:
        rng = np.random.default_rng(seed + 1)
        replicates = [
            factor_vae_from_votes(train[rng.integers(0, votes, votes)], test[rng.integers(0, votes, votes)], dims, k)
            for _ in range(bootstrap)
        ]
        out["factor_vae_score_ci_low"], out["factor_vae_score_ci_high"] = interval(
            torch.tensor(replicates), out["factor_vae_score"], lower=0.0, upper=1.0
        )
    return out


# --- all of them ---------------------------------------------------------------------------------------------------


def bootstrap_mig_sap(codes: np.ndarray, factors: np.ndarray, sizes, *, bootstrap: int, seed: int) -> dict:
    """MIG and SAP with percentile intervals from ``bootstrap`` resamples of the images."""
    binned = discretize(codes)
    mi, h = mutual_information(binned, factors, sizes)
    out = {"mig": mig_from_mi(mi, h), "sap": sap_from_scores(_r2_matrix(codes, factors.astype(np.float64)))}
    if bootstrap:
        rng = np.random.default_rng(seed)
        n = len(codes)
        migs, saps = [], []
        for _ in range(bootstrap):
            weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
            migs.append(mig_from_mi(*mutual_information(binned, factors, sizes, weights)))
            saps.append(sap_from_scores(_r2_matrix(codes, factors.astype(np.float64), weights)))
        for key, values in (("mig", migs), ("sap", saps)):
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = interval(
                torch.tensor(values, dtype=torch.float64), out[key], lower=0.0, upper=1.0
            )
    return out


def disentanglement_scores(
    codes, factors, sizes, codes_of, source: FactorSource, *, bootstrap: int = 0, seed: int = 0,
    votes: int = VOTES, vote_batch: int = VOTE_BATCH,
) -> dict:  # fmt: skip
    """Every metric of this module for ``codes`` (N, D) of images with ``factors`` (N, K); ``codes_of`` and
    ``source`` make the FactorVAE votes (``codes`` give its per-dimension scale)."""
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.int64)
    out = bootstrap_mig_sap(codes, factors, sizes, bootstrap=bootstrap, seed=seed)
    out.update(dci(codes, factors, seed=seed))
    out.update(
        factor_vae_score(codes_of, source, codes.std(0), votes=votes, batch=vote_batch, seed=seed, bootstrap=bootstrap)
    )
    if not bootstrap:
        out = {k: v for k, v in out.items() if not k.endswith(("_ci_low", "_ci_high"))}
    return out


# --- a run's codes -------------------------------------------------------------------------------------------------

ENCODER_STEPS = 400  # Adam steps of the encoder fitted to a generator's (G(z), z) pairs
ENCODER_BATCH = 64
ENCODE_BATCH = 1000


class LatentEncoder(torch.nn.Module):
    """A small CNN from images in [0, 1] to a flat latent code: fitted to (G(z), z) for a model without an
    encoder."""

    def __init__(self, image_shape, dim: int, width: int = 32):
        super().__init__()
        channels, size, _ = image_shape
        side = size // 2 // 2  # two 4x4 stride-2 convolutions with padding 1 halve the side twice (rounding down)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(channels, width, 4, 2, 1),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(width, 2 * width, 4, 2, 1),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Flatten(),
            torch.nn.Linear(2 * width * side * side, 256),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Linear(256, dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)


def fit_latent_encoder(model, *, steps: int | None = None, batch: int = ENCODER_BATCH, seed: int = 0):
    """An encoder fitted by least squares to pairs (G(z), z) with z from the model's prior (fresh pairs each
    step; ``steps`` defaults to ``ENCODER_STEPS``); the model's own weights are not touched."""
    steps = ENCODER_STEPS if steps is None else steps
    device = model.device
    generator = torch.Generator().manual_seed(seed)
    dim = math.prod(model.capabilities.latent_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = LatentEncoder(model.config.image_shape, dim).to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    for _ in range(steps):
        z = model.prior(batch, generator)
        with torch.no_grad():
            images = model.decode(z.to(device)).clamp(0, 1)
        loss = torch.nn.functional.mse_loss(encoder(images), z.to(device).flatten(1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return encoder.eval()


@torch.inference_mode()
def encode_images(encode, images: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
    """Codes (N, D) float64 of uint8 images, in batches; ``encode(x, labels)``."""
    parts = []
    for start in range(0, len(images), ENCODE_BATCH):
        part = images[start : start + ENCODE_BATCH].float() / 255
        part_labels = None if labels is None else labels[start : start + ENCODE_BATCH]
        parts.append(encode(part, part_labels).flatten(1).double().cpu())
    return torch.cat(parts).numpy()


def run_codes(model, *, seed: int = 0):
    """(encode(x, labels) -> codes, how the codes are made) for a model: its encoder (the posterior mean for a VAE)
    when it has one, else an encoder fitted to (G(z), z) pairs."""
    capabilities = model.capabilities
    if capabilities.encoder:

        def encode(x, labels):
            kwargs = {} if labels is None else model.label_kwargs(labels.to(model.device))
            return model.encode(x.to(model.device), **kwargs)

        return encode, "posterior mean" if capabilities.posterior else "encoder"
    encoder = fit_latent_encoder(model, seed=seed)
    return (
        lambda x, labels: encoder(x.to(model.device)),
        f"encoder fitted to {ENCODER_STEPS * ENCODER_BATCH} (G(z), z) pairs",
    )


def score_run(model, data, *, n: int, seed: int = 0, bootstrap: int = 0) -> dict:
    """The disentanglement metrics of ``model`` on a data set with known factors (``data.factors``): codes of up
    to ``n`` images (the test split first, then the train split), FactorVAE votes from rendered batches (or from
    the data's images sharing a factor value when the set cannot be rendered). Adds ``codes_method``."""
    spec = data.factors
    images = torch.cat([data.test.images, data.train.images[: max(0, n - len(data.test))]])[:n]
    factors = torch.cat([data.test.factors, data.train.factors])[: len(images)].numpy()
    shape = spec.names.index("shape") if "shape" in spec.names else None
    conditional = model.capabilities.conditional and shape is not None

    def labels_of(f: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(f[:, shape])) if conditional else None

    encode, method = run_codes(model, seed=seed)
    codes = encode_images(encode, images, labels_of(factors))
    if spec.render is not None:
        source = FactorSource(spec.sizes, render=spec.render)
    else:
        pool = torch.cat([data.train.factors, data.test.factors]).numpy()
        source = FactorSource(
            spec.sizes, pool_images=torch.cat([data.train.images, data.test.images]), pool_factors=pool
        )

    def codes_of(f: np.ndarray, batch_images) -> np.ndarray:
        return encode_images(encode, batch_images, labels_of(f))

    scores = disentanglement_scores(codes, factors, spec.sizes, codes_of, source, bootstrap=bootstrap, seed=seed)
    return {**scores, "codes_method": method}


# --- which factor each dimension holds (the Latent space tab) -------------------------------------------------------

FACTOR_MAP_IMAGES = 2000  # test images whose codes the map is measured on
CHANCE_SHUFFLES = 5  # pairings with other images' factors that set the map's chance level
LABEL_MARGIN = 0.05  # a dimension is named after a factor only this far above chance (committed runs: 0.03-0.24)


def normalised_mi(codes, factors, sizes) -> np.ndarray:
    """(D, K) mutual information of each code dimension (binned as for MIG) with each factor, divided by the
    factor's entropy: 0 = the dimension says nothing about the factor, 1 = it determines it (up to the bins)."""
    mi, h_factor = mutual_information(discretize(codes), np.asarray(factors, dtype=np.int64), sizes)
    return np.divide(mi, h_factor, out=np.zeros_like(mi), where=h_factor > 0)


def chance_mi(codes, factors, sizes, *, shuffles: int = CHANCE_SHUFFLES, seed: int = 0) -> np.ndarray:
    """The (D, K) normalised MI the plug-in estimate reads with no relation at all: the largest over ``shuffles``
    pairings of the codes with other images' factors. On 2 000 images it is about 0.05 for x and y (32 values)."""
    factors = np.asarray(factors, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.max([normalised_mi(codes, factors[rng.permutation(len(factors))], sizes) for _ in range(shuffles)], 0)


def dimension_labels(nmi: np.ndarray, names, chance: np.ndarray | None = None, switched_off=None) -> list[str]:
    """For each code dimension, the factor it holds the most information about beyond ``chance`` and that
    normalised MI, e.g. ``"x (0.24)"``; ``"no single factor"`` when no cell exceeds chance by ``LABEL_MARGIN``
    (a label at the noise level would name a factor the pictures do not show), ``"switched off"`` where
    ``switched_off`` (a VAE dimension without KL: its posterior mean may still follow a factor, but the decoder
    ignores it)."""
    above = nmi - (chance if chance is not None else 0)
    labels = []
    for j, k in enumerate(above.argmax(1)):
        if switched_off is not None and switched_off[j]:
            labels.append("switched off")
        elif chance is not None and above[j, k] < LABEL_MARGIN:
            labels.append("no single factor")
        else:
            labels.append(f"{names[k]} ({nmi[j, k]:.2f})")
    return labels


DECODED_MIN = 0.1  # a traversal row moves a factor when its read value changes by this share of the range


@torch.inference_mode()
def decoded_shares(extractor, rows: torch.Tensor, factors) -> np.ndarray:
    """(rows, factors) how far each traversal row (frames of one decoded dimension) moves each factor whose values lie
    on a line (``factors.ordered``: scale and position for sprites), as the data set's factor extractor reads the
    pictures: the range of the factor's expected value along the row, as a share of the factor's range (0 for the
    other factors). Categories and angles (shape, orientation) have no distance on a line, so a row that only turns
    or reshapes moves none: the pictures show that part."""
    shares = np.zeros((len(rows), len(factors.sizes)))
    for i, row in enumerate(rows):
        logits = extractor.factor_logits(row)
        for k, ordered in enumerate(factors.ordered):
            if ordered:
                size = factors.sizes[k]
                expected = logits[k].softmax(1) @ torch.arange(size, dtype=torch.float32) / (size - 1)
                shares[i, k] = float(expected.max() - expected.min())
    return shares


def decoded_moves(shares: np.ndarray, factors) -> list[str]:
    """Each row's label from its ``decoded_shares``: the factor it moves most with that share ("y (0.35)"), or "no
    <factor>/<factor> change" below ``DECODED_MIN``. This is the decoder's side of a dimension;
    ``dimension_labels`` is the encoder's (its MI with real images' factors)."""
    ordered = [k for k, flag in enumerate(factors.ordered) if flag]
    labels = []
    for row in shares:
        k = max(ordered, key=lambda j: row[j])
        if row[k] >= DECODED_MIN:
            labels.append(f"{factors.names[k]} ({row[k]:.2f})")
        else:
            labels.append(f"no {'/'.join(factors.names[j] for j in ordered)} change")
    return labels


def factor_map(model, data, *, images: int = FACTOR_MAP_IMAGES, seed: int = 0) -> dict:
    """The normalised MI of each of ``model``'s code dimensions with each known factor of ``data``, on up to
    ``images`` test images (codes as for the metrics: ``run_codes``): the matrix, the factor names, each
    dimension's label and how the codes were made."""
    spec = data.factors
    split = data.test
    count = min(images, len(split))
    factors = split.factors[:count].numpy()
    shape = spec.names.index("shape") if "shape" in spec.names else None
    labels = split.factors[:count, shape] if model.capabilities.conditional and shape is not None else None
    encode, method = run_codes(model, seed=seed)
    codes = encode_images(encode, split.images[:count], labels)
    nmi = normalised_mi(codes, factors, spec.sizes)
    chance = chance_mi(codes, factors, spec.sizes, seed=seed)
    labels = dimension_labels(nmi, spec.names, chance)
    return {"nmi": nmi, "chance": chance, "names": spec.names, "labels": labels, "codes_method": method}
