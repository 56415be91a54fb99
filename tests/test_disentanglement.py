"""Known answers of the disentanglement metrics (evaluation/disentanglement.py), and agreement with plain
reference implementations written out below."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from evaluation import disentanglement as dz

SIZES = (3, 6, 40, 32, 32)  # sprites' factors: shape, scale, orientation, x, y
NAMES = ("shape", "scale", "orientation", "x", "y")
N = 3000


def _factors(rng, n: int = N) -> np.ndarray:
    return np.stack([rng.integers(0, s, n) for s in SIZES], 1)


def _scores(codes, factors, codes_of, bootstrap: int = 0) -> dict:
    return dz.disentanglement_scores(
        codes, factors, SIZES, codes_of, dz.FactorSource(SIZES), bootstrap=bootstrap, votes=100, vote_batch=32
    )


@pytest.fixture(scope="module")
def known():
    """Scores of the known-answer codes: the factors (+ small noise), a random rotation of them, pure noise, and
    each factor repeated in two dimensions. The factors enter a code at a code's scale: each factor's value
    index divided by its spread (k-NN informativeness scales the whole code by one number)."""
    rng = np.random.default_rng(0)
    f = _factors(rng)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    spread = np.asarray(SIZES, dtype=float) / math.sqrt(12)  # a uniform factor's standard deviation
    unit = lambda g: g / spread  # noqa: E731
    noisy = lambda x: x + rng.normal(0, 0.005, x.shape)  # noqa: E731
    cases = {
        "factors": (noisy(unit(f)), lambda g, _: noisy(unit(g))),
        "rotated": (noisy(unit(f)) @ rotation, lambda g, _: noisy(unit(g)) @ rotation),
        "noise": (rng.normal(size=(N, 5)), lambda g, _: rng.normal(size=(len(g), 5))),
        "repeated": (noisy(np.repeat(unit(f), 2, 1)), lambda g, _: noisy(np.repeat(unit(g), 2, 1))),
    }
    return {name: _scores(codes, f, codes_of, bootstrap=50) for name, (codes, codes_of) in cases.items()}


def test_codes_equal_to_the_factors_score_high(known):
    s = known["factors"]
    assert s["dci_disentanglement"] >= 0.9 and s["dci_completeness"] >= 0.9 and s["dci_informativeness"] >= 0.95
    assert s["mig"] >= 0.85  # 20 equal-width bins: at most ≈ 0.90 on factors of 32 and 40 values
    assert s["factor_vae_score"] >= 0.95 and s["sap"] >= 0.9


def test_a_rotation_keeps_informativeness_but_drops_mig(known):
    rotated, straight = known["rotated"], known["factors"]
    assert rotated["dci_informativeness"] >= 0.8
    assert rotated["mig"] < straight["mig"] - 0.4
    assert rotated["dci_disentanglement"] < straight["dci_disentanglement"] - 0.3


def test_pure_noise_scores_about_zero(known):
    s = known["noise"]
    for key in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap"):
        assert s[key] < 0.05, key
    assert s["factor_vae_score"] < 0.4  # chance is 1/5: the FactorVAE score is an accuracy


def test_a_factor_repeated_in_two_dims_has_no_gap(known):
    s = known["repeated"]
    assert s["mig"] < 0.05 and s["sap"] < 0.05  # its two best dimensions are equally informative
    assert s["dci_informativeness"] >= 0.95
    assert s["dci_completeness"] < 0.8  # each factor spread over two dimensions


def test_intervals_hold_their_estimates(known):
    for scores in known.values():
        for key in dz.KEYS:
            low, high = scores[f"{key}_ci_low"], scores[f"{key}_ci_high"]
            assert 0 <= low <= scores[key] <= high <= 1, (key, low, scores[key], high)


# --- plain reference implementations ----------------------------------------------------------------------------


def reference_bins(column: np.ndarray, bins: int = 20) -> list[int]:
    low, high = np.quantile(column, [0.005, 0.995])
    out = []
    for value in column:
        b = 0 if high <= low else int(math.floor((value - low) / ((high - low) / bins)))
        out.append(min(max(b, 0), bins - 1))
    return out


def reference_mi(a: list, b: list) -> float:
    n = len(a)
    pa, pb, pab = Counter(a), Counter(b), Counter(zip(a, b))
    return sum(c / n * math.log((c / n) / (pa[x] / n * pb[y] / n)) for (x, y), c in pab.items())


def reference_entropy(a: list) -> float:
    n = len(a)
    return -sum(c / n * math.log(c / n) for c in Counter(a).values())


def reference_mig(codes: np.ndarray, factors: np.ndarray) -> float:
    binned = [reference_bins(codes[:, j]) for j in range(codes.shape[1])]
    gaps = []
    for k in range(factors.shape[1]):
        f = factors[:, k].tolist()
        mi = sorted((reference_mi(b, f) for b in binned), reverse=True)
        gaps.append((mi[0] - mi[1]) / reference_entropy(f))
    return sum(gaps) / len(gaps)


def reference_sap(codes: np.ndarray, factors: np.ndarray) -> float:
    gaps = []
    for k in range(factors.shape[1]):
        r2 = sorted((np.corrcoef(codes[:, j], factors[:, k])[0, 1] ** 2 for j in range(codes.shape[1])), reverse=True)
        gaps.append(r2[0] - r2[1])
    return sum(gaps) / len(gaps)


def reference_dci(importance: np.ndarray) -> tuple[float, float]:
    dims, k = importance.shape
    total = importance.sum()
    disentanglement = 0.0
    for j in range(dims):
        p = importance[j] / importance[j].sum()
        h = -sum(x * math.log(x, k) for x in p if x > 0)
        disentanglement += (importance[j].sum() / total) * (1 - h)
    completeness = 0.0
    for i in range(k):
        p = importance[:, i] / importance[:, i].sum()
        completeness += 1 - (-sum(x * math.log(x, dims) for x in p if x > 0))
    return disentanglement, completeness / k


def reference_factor_vae(train: np.ndarray, test: np.ndarray) -> float:
    votes: dict[int, Counter] = {}
    for dim, factor in train:
        votes.setdefault(int(dim), Counter())[int(factor)] += 1
    correct = 0
    for dim, factor in test:
        counts = votes.get(int(dim))
        guess = min(counts, key=lambda f: (-counts[f], f)) if counts else 0
        correct += guess == factor
    return correct / len(test)


@pytest.mark.parametrize("seed", [1, 2])
def test_agrees_with_plain_reference_implementations(seed):
    rng = np.random.default_rng(seed)
    f = _factors(rng, 600)
    codes = rng.normal(size=(600, 4)) + 0.05 * f[:, [0, 1, 2, 3]] * rng.normal(size=4)  # weakly informative
    codes[:, 3] = np.round(codes[:, 3])  # ties
    assert dz.mig(codes, f, SIZES) == pytest.approx(reference_mig(codes, f), abs=1e-9)
    assert dz.sap(codes, f) == pytest.approx(reference_sap(codes, f), abs=1e-9)
    importance = rng.random((4, 5)) ** 3
    assert dz.dci_from_importance(importance) == pytest.approx(reference_dci(importance), abs=1e-9)
    train, test = rng.integers(0, [4, 5], (200, 2)), rng.integers(0, [4, 5], (100, 2))
    assert dz.factor_vae_from_votes(train, test, 4, 5) == pytest.approx(reference_factor_vae(train, test))


def test_a_constant_code_dimension_carries_no_information():
    rng = np.random.default_rng(3)
    f = _factors(rng, 500)
    codes = np.concatenate([f[:, :1] + rng.normal(0, 0.05, (500, 1)), np.zeros((500, 1))], 1)
    mi, _ = dz.mutual_information(dz.discretize(codes), f, SIZES)
    assert np.all(mi[1] == 0)


def test_factor_vae_votes_from_a_pool_of_images_match_rendered_ones():
    """A data set that cannot be rendered (DeepMind's file) draws each vote's batch from its images sharing the
    fixed factor's value: codes equal to the factors still score 1."""
    import torch

    rng = np.random.default_rng(4)
    pool = _factors(rng, 4000)
    source = dz.FactorSource(SIZES, pool_images=torch.zeros(len(pool), 1, 2, 2), pool_factors=pool)
    codes_of = lambda g, images: g + rng.normal(0, 0.05, g.shape)  # noqa: E731
    out = dz.factor_vae_score(codes_of, source, pool.std(0), votes=100, batch=32)
    assert out["factor_vae_score"] == 1.0


def test_the_factor_map_of_a_code_that_is_the_factors_is_diagonal_and_names_them():
    """Through a model's encoder: images whose pixels hold the factor values, an encoder that reads them back in
    a shuffled order plus a dead dimension. Each used dimension is labelled by its own factor, its row of the
    heatmap is bright on that factor only; the dead dimension holds nothing."""
    from types import SimpleNamespace

    import torch

    from generators.base import Capabilities
    from generators.data import ImageSplit
    from generators.sprites import FACTOR_NAMES

    rng = np.random.default_rng(1)
    factors = torch.from_numpy(_factors(rng, 2000))
    order = [3, 0, 4, 2, 1]  # dimension j holds factor order[j]; the last dimension is dead
    model = SimpleNamespace(
        capabilities=Capabilities(title="toy", encoder=True, posterior=True, latent_shape=(6,)),
        device=torch.device("cpu"),
        encode=lambda x: torch.cat([x.flatten(1)[:, order] * 255, torch.zeros(len(x), 1)], 1),
    )
    split = ImageSplit(factors.to(torch.uint8)[:, None, None, :], None, factors)
    data = SimpleNamespace(test=split, factors=SimpleNamespace(names=FACTOR_NAMES, sizes=SIZES))
    found = dz.factor_map(model, data)
    nmi = found["nmi"]
    assert nmi.shape == (6, 5) and found["names"] == FACTOR_NAMES
    assert [label.split(" (")[0] for label in found["labels"][:5]] == [FACTOR_NAMES[k] for k in order]
    held = nmi[np.arange(5), order]
    assert held.min() > 0.75  # bins of 1-2 values: ≥ log 20 / log 40 for every factor
    off = nmi[:5].copy()
    off[np.arange(5), order] = 0
    assert off.max() < 0.1 and np.allclose(nmi[5], 0)  # independent factors (plug-in bias ≈ 0.05), a dead dim
    assert found["labels"][0] == f"x ({nmi[0, 3]:.2f})" and found["codes_method"] == "posterior mean"
    assert found["labels"][5] == "no single factor"  # the dead dimension
    assert found["chance"].shape == (6, 5) and 0 < found["chance"][:5].max() < 0.1


def test_chance_level_is_what_unrelated_codes_read_and_labels_need_to_clear_it():
    """Codes independent of the factors read about their chance level (no label); a dimension that holds x is
    named; a switched-off one is called so whatever its MI."""
    rng = np.random.default_rng(2)
    factors = _factors(rng, 2000)
    noise = rng.normal(size=(2000, 3))
    codes = np.column_stack([noise, factors[:, 3] + 0.1 * rng.normal(size=2000)])
    nmi = dz.normalised_mi(codes, factors, SIZES)
    chance = dz.chance_mi(codes, factors, SIZES)
    assert np.all(np.abs(nmi[:3] - chance[:3]) < 0.03)  # unrelated: the estimate's bias, which chance measures
    labels = dz.dimension_labels(nmi, NAMES, chance)
    assert labels[:3] == ["no single factor"] * 3 and labels[3] == f"x ({nmi[3, 3]:.2f})"
    assert dz.dimension_labels(nmi, NAMES, chance, [False, False, False, True])[3] == "switched off"


def test_decoded_moves_names_the_factor_a_rendered_row_moves():
    """Known answer on rendered sprites read by the committed factor extractor: a row that moves only x, only y or
    only the scale is named after it, with the share of its range (x and y from 2 to 29 of 0..31: 0.87); a row that
    only turns the shape moves no factor on a line."""
    from pathlib import Path

    from evaluation.features import load_extractor
    from generators.sprites import FACTOR_SIZES, sprite_factors

    root = Path(__file__).resolve().parents[1]
    extractor = load_extractor(root / "checkpoints/_extractors/sprites/classifier-1x32x32.safetensors", FACTOR_SIZES)
    assert extractor is not None
    factors = sprite_factors()
    base = np.array([2, 3, 5, 12, 20])  # a heart, mid scale, turned a little, left of centre, low
    labels = []
    for factor, values in (
        (3, np.arange(2, 30, 3)),
        (4, np.arange(2, 30, 3)),
        (1, np.arange(6)),
        (2, np.arange(0, 36, 4)),
    ):
        combos = np.tile(base, (len(values), 1))
        combos[:, factor] = values
        shares = dz.decoded_shares(extractor, (factors.render(combos).float() / 255)[None], factors)
        labels += dz.decoded_moves(shares, factors)
    names = [label.split(" (")[0] for label in labels]
    assert names == ["x", "y", "scale", "no scale/x/y change"], labels
    shares = [float(label.split("(")[1].rstrip(")")) for label in labels[:3]]
    # the expected value under the read probabilities pulls the ends in a little: within 0.1 of the true range
    assert shares == pytest.approx([27 / 31, 27 / 31, 1.0], abs=0.1)


def test_the_traversal_labels_switch_off_exactly_the_dimensions_the_kl_chart_calls_inactive():
    """One rule on the page: a dimension with KL above 0.1 nats but an inactive posterior mean (a model that has not
    learnt yet) reads "switched off", like its grey bar; an active one is named after its factor."""
    from dashboard.latent import traversal_labels

    nmi = np.array([[0.9, 0.0], [0.0, 0.8], [0.7, 0.0]])
    found = {"nmi": nmi, "names": ("x", "y"), "chance": np.zeros_like(nmi)}
    usage = {"kl_per_dim": [0.5, 0.02, 2.0], "active": [False, True, True]}
    assert traversal_labels(found, usage) == ["switched off", "y (0.80)", "x (0.70)"]
    assert traversal_labels(found, None) == ["x (0.90)", "y (0.80)", "x (0.70)"]  # no posterior: nothing switched off
