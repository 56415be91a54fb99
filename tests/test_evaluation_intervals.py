"""Known answers for the evaluation's intervals and checks: bootstrap intervals, FID against n and fid_inf, copy
rate, protocols, and the metric sanity panel."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from evaluation import report
from evaluation.__main__ import main as evaluation_main
from evaluation.bootstrap import Blocks, interval
from evaluation.features import extractor_path
from evaluation.fid import FidMoments, KidBlocks, fid_curve, fid_floor, fid_infinity, fid_replicates, frechet_distance
from evaluation.memorization import copy_rate, copy_threshold, nearest_gallery
from evaluation.metric_specs import METRICS
from evaluation.prdc import PrdcBlocks, prdc
from evaluation.protocol import compare_protocols
from tests.helpers import ROOT


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.eye(d) + 0.3 * torch.randn(d, d, generator=torch.Generator().manual_seed(99))
    return torch.randn(n, d, generator=gen) @ mixing + shift


def ones(blocks: Blocks) -> torch.Tensor:
    return torch.ones(1, blocks.count, dtype=torch.float64)


# --- the block machinery gives the plain estimates back -----------------------------------------------------


def test_fid_of_all_blocks_equals_torchmetrics_fid():
    a, b = gaussian(1003, 12, 0), gaussian(797, 12, 1, shift=0.4)
    blocks_a, blocks_b = Blocks.random(len(a), 0), Blocks.random(len(b), 1)
    value = fid_replicates(FidMoments(a, blocks_a), FidMoments(b, blocks_b), ones(blocks_a), ones(blocks_b))
    assert value.item() == pytest.approx(frechet_distance(a, b), rel=1e-7)  # 1e-9 x variance of jitter


def test_kid_of_all_blocks_equals_the_unbiased_mmd_over_all_pairs():
    a, b = gaussian(303, 6, 2), gaussian(251, 6, 3, shift=0.5)
    kernel = lambda x, y: (x.double() @ y.double().T / x.shape[1] + 1) ** 3  # noqa: E731
    off_diagonal = lambda k: (k.sum() - k.diagonal().sum()) / (len(k) * (len(k) - 1))  # noqa: E731
    expected = off_diagonal(kernel(a, a)) + off_diagonal(kernel(b, b)) - 2 * kernel(a, b).mean()
    blocks_a, blocks_b = Blocks.random(len(a), 0), Blocks.random(len(b), 1)
    value = KidBlocks(a, b, blocks_a, blocks_b).replicates(ones(blocks_a), ones(blocks_b))
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_prdc_equals_its_definition_computed_directly():
    real, fake, k = gaussian(240, 3, 4), gaussian(200, 3, 5, shift=0.3), 4
    d_rr, d_ff, d_fr = torch.cdist(real, real), torch.cdist(fake, fake), torch.cdist(fake, real)
    real_radii = d_rr.sort(1).values[:, k]
    fake_radii = d_ff.sort(1).values[:, k]
    inside = d_fr < real_radii  # inside[j, i]: fake j in real i's ball
    expected = {
        "precision": inside.any(1).float().mean().item(),
        "recall": (d_fr < fake_radii.unsqueeze(1)).any(0).float().mean().item(),
        "density": inside.sum(1).float().mean().item() / k,
        "coverage": inside.any(0).float().mean().item(),
    }
    assert prdc(real, fake, k=k, chunk=64) == pytest.approx(expected)


# --- intervals ----------------------------------------------------------------------------------------------


def test_interval_is_recentred_on_the_estimate_and_clipped_to_the_range():
    replicates = torch.linspace(0, 1, 1001, dtype=torch.float64) + 0.3  # median 0.8: biased upwards by 0.3
    low, high = interval(replicates, 0.5)
    assert low == pytest.approx(0.025) and high == pytest.approx(0.975)  # the raw percentiles were 0.325, 1.275
    assert interval(replicates, 0.5, upper=0.9)[1] == 0.9
    assert interval(torch.tensor([math.nan, math.inf])) == (None, None)


def fid_bootstrap(a, b, replicates=200, seed=0):
    blocks_a, blocks_b = Blocks.random(len(a), seed), Blocks.random(len(b), seed + 1)
    values = fid_replicates(
        FidMoments(a, blocks_a),
        FidMoments(b, blocks_b),
        blocks_a.resample(replicates, seed + 2),
        blocks_b.resample(replicates, seed + 3),
    )
    return interval(values, frechet_distance(a, b), lower=0.0)


def test_fid_interval_of_two_real_halves_contains_the_floor():
    """One set of 'real' features: the interval of FID(half A, half B) must hold the real-vs-real floor
    measured on other random halves of the same set."""
    feats = gaussian(4000, 16, 6)
    floor, half = fid_floor(feats, 2000, seed=7)
    low, high = fid_bootstrap(feats[:2000], feats[2000:])
    assert half == 2000 and low <= floor <= high


def test_intervals_shrink_as_n_grows():
    widths = {}
    for n in (500, 4000):
        real, fake = gaussian(n, 16, 8), gaussian(n, 16, 9, shift=0.2)
        low, high = fid_bootstrap(real, fake)
        blocks_r, blocks_f = Blocks.random(n, 0), Blocks.random(n, 1)
        reps = PrdcBlocks(real, fake, blocks_r, blocks_f, k=5).replicates(
            blocks_r.resample(200, 2), blocks_f.resample(200, 3)
        )
        coverage = interval(reps["coverage"])
        widths[n] = (high - low, coverage[1] - coverage[0])
    assert widths[4000][0] < widths[500][0] / 2  # ~ 1/sqrt(n): 8x the samples, about a third of the width
    assert widths[4000][1] < widths[500][1] * 0.75


def test_fid_inf_of_two_samples_from_one_gaussian_is_near_zero():
    a, b = gaussian(5000, 16, 10), gaussian(5000, 16, 11)
    moments_a, moments_b = FidMoments(a, Blocks.random(5000, 0)), FidMoments(b, Blocks.random(5000, 1))
    points = fid_curve(moments_a, moments_b, (500, 1000, 2000, 5000), draws=30, seed=0)
    assert [p["n"] for p in points] == [500, 1000, 2000, 5000]
    assert points[0]["fid"] > points[-1]["fid"] > 0  # the finite-sample bias falls with n ...
    assert abs(fid_infinity(points)) < 0.15 * points[0]["fid"]  # ... and extrapolates to about 0
    assert all(p["ci_low"] <= p["fid"] <= p["ci_high"] for p in points[:-1])


def test_fid_inf_of_two_different_gaussians_is_their_distance():
    shift = 1.0  # means differ by 1 in each of 4 dimensions, same covariance: FID = 4
    a, b = gaussian(4000, 4, 12), gaussian(4000, 4, 13, shift=shift)
    moments_a, moments_b = FidMoments(a, Blocks.random(4000, 0)), FidMoments(b, Blocks.random(4000, 1))
    points = fid_curve(moments_a, moments_b, (500, 1000, 2000, 4000), draws=30, seed=0)
    assert fid_infinity(points) == pytest.approx(4 * shift**2, rel=0.1)


# --- copy rate ----------------------------------------------------------------------------------------------


def test_copy_rate_is_one_for_the_training_images_and_about_five_percent_for_new_ones():
    train, heldout, fresh = gaussian(3000, 8, 14), gaussian(1000, 8, 15), gaussian(3000, 8, 16)
    threshold = copy_threshold(heldout, train)
    assert copy_rate(train[:1000], train, threshold) == 1.0
    assert copy_rate(fresh, train, threshold) == pytest.approx(0.05, abs=0.02)


class _Flatten:
    def features_and_logits(self, images):
        return images.flatten(1), None


def test_the_gallery_finds_each_sample_among_the_training_images():
    train = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    samples = train[[7, 3]].float() / 255
    rows = nearest_gallery(samples, train, _Flatten(), k=3)
    assert [row["indices"][0] for row in rows] == [7, 3]
    assert all(row["distances"][0] < 1e-3 < row["distances"][1] <= row["distances"][2] for row in rows)


# --- protocols ----------------------------------------------------------------------------------------------


def test_rows_of_one_protocol_are_comparable_and_mixed_ones_are_flagged():
    protocol = {"extractor_id": "cnn-x", "n_fake": 5000, "sampler": "prior", "run_step": 100, "bootstrap": 200}
    same = [{"run": "a", "protocol": protocol}, {"run": "b", "protocol": dict(protocol)}]
    assert compare_protocols(same).same
    mixed = [same[0], {"run": "c", "protocol": {**protocol, "n_fake": 1000, "run_step": 50}}]
    check = compare_protocols(mixed)
    assert not check.same and check.differing == {"n_fake": [5000, 1000]}  # budgets are compared on request
    assert compare_protocols(mixed, include_training=True).differing["run_step"] == [100, 50]
    assert not compare_protocols([same[0], {"run": "old"}]).same  # a row without a protocol never matches
    assert "Not comparable" in report.to_markdown(mixed) and "n_fake differs (5000, 1000)" in report.provenance(mixed)
    assert "Not comparable" not in report.to_markdown(same)


def test_report_columns_come_from_the_metric_table_and_show_intervals():
    row = {"run": "r", "fid": 2.0, "fid_ci_low": 1.5, "fid_ci_high": 2.5, "capabilities": {"posterior": False}}
    frame = report.summary_frame([row])
    assert frame.loc[0, report.column_title(METRICS["fid"])] == "2.00 [1.50, 2.50]"
    assert frame.loc[0, "ELBO (nats/image) ↑"] == "n/a"  # needs a posterior, which the model lacks
    assert frame.loc[0, "FID (test) ↓"] == "–"  # applies, but was not computed
    assert all(label in frame.columns for label in ("FID ↓", "copy rate ↓", "KID (×10³) ↓", "coverage ↑"))
    assert "ELBO (nats/image) ↑" not in report.summary_frame([row], drop_not_applicable=True).columns


# --- the sanity panel ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extractor_dir(tmp_path_factory):
    committed = extractor_path(ROOT / "checkpoints" / "_extractors", "mnist5k", (1, 28, 28))
    if not committed.is_file():
        pytest.skip("the committed extractor checkpoints/_extractors/mnist5k is missing")
    cache = tmp_path_factory.mktemp("extractors")
    target = extractor_path(cache, "mnist5k", (1, 28, 28))
    target.parent.mkdir(parents=True)
    shutil.copyfile(committed, target)
    return cache


def test_sanity_panel_ranks_the_corruptions_as_the_metrics_promise(extractor_dir, tmp_path, capsys):
    files = {"json": tmp_path / "panel.json", "markdown": tmp_path / "panel.md"}
    argv = ["sanity", "--n", "1000", "--bootstrap", "20", "--extractor-dir", str(extractor_dir)]
    assert evaluation_main(argv + ["--json", str(files["json"]), "--markdown", str(files["markdown"])]) == 0
    rows = {row["case"]: row for row in json.loads(files["json"].read_text())}
    base = rows["held-out (baseline)"]
    for blur in ("blur σ=1", "blur σ=2"):
        assert rows[blur]["fid"] > base["fid_ci_high"]
        assert rows[blur]["recall"] < base["recall_ci_low"] and rows[blur]["coverage"] < base["coverage_ci_low"]
    assert rows["blur σ=2"]["fid"] > rows["blur σ=1"]["fid"]
    assert rows["one class"]["modes"] == 1 and base["modes"] == 10
    repeated = rows["10 images repeated"]
    assert repeated["recall"] < 0.05 and repeated["coverage"] < 0.1
    assert rows["training images"]["copy_rate"] > 0.95 and base["copy_rate"] == pytest.approx(0.05, abs=0.01)
    assert "held-out (baseline)" in files["markdown"].read_text() and "FID ↓" in capsys.readouterr().out
