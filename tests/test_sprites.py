"""The sprites data sets (generators/sprites.py): the factor grid, the renderer, the splits with their factors,
DeepMind's file read without unpickling, and a sprites run scored with the disentanglement metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from generators import sprites
from generators.data import load_dataset
from generators.errors import UserError
from tests.helpers import ROOT, assert_one_line_error, run_cli


def test_the_factor_grid_is_dsprites():
    spec = sprites.sprite_factors()
    assert spec.names == ("shape", "scale", "orientation", "x", "y")
    assert spec.sizes == (3, 6, 40, 32, 32) and spec.combinations == 737_280
    assert spec.values[1] == pytest.approx(np.linspace(0.5, 1, 6))
    assert spec.values[2][0] == 0 and spec.values[2][-1] == pytest.approx(2 * math.pi)
    colour = sprites.sprite_factors(color=True)
    assert colour.names[0] == "color" and colour.combinations == 737_280 * len(sprites.HUES)


def _centroid(image: torch.Tensor) -> tuple[float, float]:
    w = image.float()
    ys, xs = torch.meshgrid(torch.arange(w.shape[0]).float(), torch.arange(w.shape[1]).float(), indexing="ij")
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


def test_each_factor_changes_the_image_as_it_should():
    base = np.array([1, 3, 5, 16, 16])  # an ellipse (not symmetric under a small turn)
    vary = lambda k, v: np.where(np.arange(5) == k, v, base)  # noqa: E731
    images = sprites.render(np.stack([base, vary(1, 5), vary(2, 10), vary(3, 31), vary(4, 0), vary(0, 0)]), 64)
    assert images.shape == (6, 1, 64, 64) and images.dtype == torch.uint8
    area = images.float().sum((1, 2, 3))
    assert area[1] > 1.5 * area[0]  # larger scale
    assert not torch.equal(images[2], images[0]) and float(area[2]) == pytest.approx(
        float(area[0]), rel=0.05
    )  # turned, same area
    assert _centroid(images[3][0])[0] > _centroid(images[0][0])[0] + 10  # x moves right
    assert _centroid(images[4][0])[1] < _centroid(images[0][0])[1] - 10  # y = 0 is at the top
    assert not torch.equal(images[5], images[0])  # another shape
    values = images.unique()
    assert ((values > 0) & (values < 255)).any()  # antialiased edges
    assert torch.equal(sprites.render(base, 64), images[:1])  # deterministic


def test_shapes_stay_inside_the_image_at_every_position_and_scale():
    corners = np.array([[s, 5, o, x, y] for s in range(3) for o in (0, 5, 10) for x in (0, 31) for y in (0, 31)])
    images = sprites.render(corners, 32)
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], -1)
    assert border.max() < 128


@pytest.fixture(scope="module")
def data():
    return load_dataset("sprites")


def test_sprites_splits_keep_their_factors(data):
    assert len(data.train) == 20_000 and len(data.test) == 2_000 and data.image_shape == (1, 32, 32)
    assert data.factors.names == sprites.FACTOR_NAMES and data.factors.sizes == sprites.FACTOR_SIZES
    assert data.class_names == ["square", "ellipse", "heart"]
    for split in (data.train, data.test):
        assert split.factors.shape == (len(split), 5) and split.factors.dtype == torch.int64
        assert torch.equal(split.labels, split.factors[:, 0])
    combos = torch.cat([data.train.factors, data.test.factors])
    assert len(torch.unique(combos, dim=0)) == len(combos)  # distinct combinations, none in both splits
    assert torch.equal(data.factors.render(data.test.factors[:50].numpy()), data.test.images[:50])
    assert torch.bincount(data.train.labels).min() > 6000  # every shape, about a third each


def test_sizes_colours_and_conversions():
    big = load_dataset("sprites", image_size=64)
    assert big.image_shape == (1, 64, 64)
    assert torch.equal(big.factors.render(big.test.factors[:5].numpy()), big.test.images[:5])
    colour = load_dataset("sprites-color")
    assert colour.image_shape == (3, 32, 32) and colour.factors.names[0] == "color"
    assert torch.equal(colour.train.labels, colour.train.factors[:, 1])
    grey = load_dataset("sprites-color", channels=1)
    assert grey.image_shape == (1, 32, 32) and grey.factors.render(grey.test.factors[:3].numpy()).shape[1] == 1


def _fake_dsprites(path, *, pickle_metadata: bool = True) -> np.ndarray:
    """A small file laid out as DeepMind's: imgs (N, 64, 64) of 0/1, latents_classes (N, 6) with a constant
    colour column, latents_values, and a pickled metadata object that must never be read."""
    grid = np.stack(np.meshgrid(range(1), range(3), range(2), range(2), range(4), range(4), indexing="ij"), -1)
    classes = grid.reshape(-1, 6).astype(np.int64)
    factors = classes[:, 1:] * np.array([1, 5, 10, 10, 10])  # spread over sprites' grid
    imgs = (sprites.render(factors, 64)[:, 0].numpy() > 127).astype(np.uint8)
    extra = {"metadata": np.array([{"description": "pickled"}], dtype=object)} if pickle_metadata else {}
    np.savez_compressed(path, imgs=imgs, latents_classes=classes, latents_values=classes.astype(float), **extra)
    return classes


def test_dsprites_file_is_read_without_unpickling(tmp_path):
    path = tmp_path / "dsprites_ndarray_test.npz"
    classes = _fake_dsprites(path)
    data = load_dataset(f"dsprites:{path}")
    assert data.image_shape == (1, 64, 64) and data.class_names == ["square", "ellipse", "heart"]
    assert data.factors.names == ("shape", "scale", "orientation", "x", "y") and data.factors.sizes == (3, 2, 2, 4, 4)
    assert data.factors.render is None
    assert len(data.train) + len(data.test) == len(classes) and len(data.test) > 0
    assert set(data.train.images.unique().tolist()) <= {0, 255}
    # each image is the one its factors name: re-render and compare
    factors = torch.cat([data.train.factors, data.test.factors])
    expected = (sprites.render(factors.numpy() * np.array([1, 5, 10, 10, 10]), 64) > 127).to(torch.uint8) * 255
    assert torch.equal(torch.cat([data.train.images, data.test.images]), expected)
    small = load_dataset(f"dsprites:{path}", image_size=32)
    assert small.image_shape == (1, 32, 32)


@pytest.mark.parametrize("content", [b"not a zip file", None])
def test_a_malformed_dsprites_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, something=np.zeros(3))  # a valid npz without the arrays
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match="not a readable dSprites"):
        load_dataset(f"dsprites:{path}")


def test_a_missing_dsprites_file_is_refused_by_the_cli(tmp_path):
    result = run_cli(
        "generators", "train", "vae", "--dataset", f"dsprites:{tmp_path}/none.npz", "--steps", "1",
        "--out-dir", str(tmp_path),
    )  # fmt: skip
    assert_one_line_error(result, mentions="dsprites")
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def sprites_runs(tmp_path_factory, data):
    """A tiny VAE and a tiny DCGAN trained a few steps on sprites, and a quick extractor (one epoch, narrow) where
    evaluation looks for the default one."""
    import shutil

    from evaluation.features import extractor_path, get_extractor
    from generators.data import ImageData, ImageSplit
    from tests.helpers import train_tiny_run

    root = tmp_path_factory.mktemp("sprites")
    for model in ("vae", "dcgan"):
        train_tiny_run(model, root / model, 3, dataset="sprites")
    cache = root / "_extractors"
    train = data.train
    few = ImageSplit(train.images[:1000], train.labels[:1000], train.factors[:1000])
    few = ImageData(data.name, few, data.test, data.class_names, data.factors)
    get_extractor("sprites", data.image_shape, cache_dir=cache, data=few, epochs=1, width=8)
    shutil.copyfile(next(cache.rglob("*-e1w8.*")), extractor_path(cache, "sprites", data.image_shape))
    return root


@pytest.mark.parametrize("model, method", [("vae", "posterior mean"), ("dcgan", "encoder fitted to")])
def test_a_sprites_run_is_scored_for_disentanglement(sprites_runs, monkeypatch, model, method):
    from evaluation import disentanglement
    from evaluation.runner import evaluate_run
    from evaluation.store import load_metrics

    monkeypatch.setattr(disentanglement, "ENCODER_STEPS", 20)
    row = evaluate_run(
        sprites_runs / model, n=300, inversion_steps=2, iwae_k=2, bootstrap=20, cache_dir=sprites_runs / "_extractors"
    )
    assert row["codes_method"].startswith(method)
    for key in disentanglement.KEYS:
        assert 0 <= row[f"{key}_ci_low"] <= row[key] <= row[f"{key}_ci_high"] <= 1, key
    assert row in load_metrics(sprites_runs / model).values()  # the store reads the row back as written


def test_the_sanity_panels_half_of_three_shapes_is_two_shapes_not_one(data):
    from evaluation.sanity import CASES

    make = {case.name: case.make for case in CASES}
    counts = torch.bincount(data.test.labels, minlength=3)
    assert len(make["half the classes"](data, 10**6, None)) == counts[:2].sum()
    assert len(make["one class"](data, 10**6, None)) == counts[0]


def test_the_sanity_panel_ranks_the_known_answers(data):
    from evaluation.sanity import factor_rows

    rows = {row["case"]: row for row in factor_rows(data, n=2000, bootstrap=0)}
    best, shuffled, noise = rows["factors as codes"], rows["shuffled factors"], rows["noise codes"]
    for key in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "factor_vae_score", "sap"):
        assert best[key] > max(shuffled[key], noise[key]) + 0.3, key
    assert best["mig"] >= 0.85 and max(shuffled["mig"], noise["mig"]) < 0.05


def test_the_sanity_command_for_sprites_holds_the_known_answer_rows(sprites_runs):
    from evaluation.report import sanity_markdown
    from evaluation.sanity import FACTOR_CASES, sanity_panel

    rows = sanity_panel("sprites", n=300, bootstrap=0, cache_dir=sprites_runs / "_extractors")
    cases = [row["case"] for row in rows]
    assert cases[-3:] == list(FACTOR_CASES) and cases[0] == "held-out (baseline)"
    assert rows[-3]["mig"] > rows[-2]["mig"] and rows[-3]["mig"] > rows[-1]["mig"]
    text = sanity_markdown(rows)  # what the CLI prints: the known-answer codes' scores, not dashes
    header = text.splitlines()[0]
    assert "MIG" in header and "DCI disentanglement" in header
    best = next(line for line in text.splitlines() if line.startswith("| factors as codes"))
    shuffled = next(line for line in text.splitlines() if line.startswith("| shuffled factors"))
    assert f"{rows[-3]['mig']:.3f}" in best and f"{rows[-2]['mig']:.3f}" in shuffled


@pytest.fixture(scope="module")
def committed_extractor(data):
    """The sprites extractor committed in checkpoints/_extractors (loaded only if it has a head per factor)."""
    from evaluation.features import extractor_path, load_extractor

    path = extractor_path(ROOT / "checkpoints" / "_extractors", "sprites", data.image_shape)
    net = load_extractor(path, data.factors.sizes)
    assert net is not None, f"{path} is missing or has no head for every factor"
    return net


def test_the_committed_sprites_extractor_reads_every_factor_back(data, committed_extractor):
    """FID on sprites is measured in features that must see shape, size and place. Orientation is left out: a
    square a quarter-turn on, or an ellipse half a turn on, is the same image."""
    predicted, true = committed_extractor.predict_factors(data.test.float_images()), data.test.factors
    exact = (predicted == true).float().mean(0)
    within_one = ((predicted - true).abs() <= 1).float().mean(0)
    assert exact[0] >= 0.93 and exact[1] >= 0.95, exact  # shape, scale
    assert within_one[3] >= 0.9 and within_one[4] >= 0.9, within_one  # x, y within one of 32 steps
    assert committed_extractor.test_accuracy >= 0.93


def test_sprites_fid_sees_place_and_corners(data, committed_extractor):
    """Real sprites of the right shape and size but all in the middle, or with their corners rounded off, are
    far from the real ones in the extractor's features: FID many times the real-against-real floor."""
    from evaluation.fid import frechet_distance

    def features(images):
        return committed_extractor.features_and_logits(images.float() / 255)[0]

    reference = features(data.train.images[:2000])
    floor = frechet_distance(reference, features(data.test.images))
    centred = data.test.factors.clone()
    centred[:, 3:] = 16
    moved = frechet_distance(reference, features(sprites.render(centred, 32)))
    blurred = torch.nn.functional.avg_pool2d(data.test.images.float(), 5, 1, 2)  # a 5-pixel box blur
    rounded = frechet_distance(reference, features((blurred > 127).to(torch.uint8) * 255))
    assert moved > 20 * floor and rounded > 5 * floor, (floor, moved, rounded)


def test_the_terminal_and_markdown_tables_show_the_disentanglement_scores_of_sprites_runs_only():
    """`python -m evaluation RUN` prints MIG and DCI for a run scored against known factors, as the README says;
    a digits table has no such columns."""
    from evaluation.report import to_markdown, to_text
    from evaluation.store import load_metrics

    sprites_row = next(r for k, r in load_metrics(ROOT / "checkpoints" / "vae-sprites").items() if "n=5000" in k)
    digits_row = next(r for k, r in load_metrics(ROOT / "checkpoints" / "vae-mnist5k").items() if "n=5000" in k)
    for render in (to_text, to_markdown):
        assert "MIG" in render([sprites_row]) and f"{sprites_row['mig']:.3f}" in render([sprites_row])
        assert "DCI disentanglement" in render([sprites_row])
        assert "MIG" not in render([digits_row])
