"""Known answers for the numbers the dashboard shows beside the metric rows (evaluation.diagnostics) and for the
claim tests (evaluation.comparison)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from evaluation import diagnostics
from evaluation.comparison import BETTER, HIGHER, NO_CLEAR_DIFFERENCE, UNTESTED, WORSE, compare
from generators.registry import MODELS, build_model
from tests.helpers import tiny_options


def capabilities_of_model(name: str):
    return build_model(name, tiny_options(name)).capabilities


torch.manual_seed(0)
IMAGES = torch.rand(6, 1, 28, 28)


def posterior_model(recon: str):
    name = next(name for name, cls in MODELS.items() if cls.has_posterior)
    return build_model(name, tiny_options(name, recon=recon)).eval()


@pytest.mark.parametrize("recon", ["bce", "mse"])
def test_negative_elbo_uses_the_runs_own_decoder_likelihood(recon):
    """−log p(x|μ) + KL, written out by hand for each decoder: Bernoulli for BCE runs, unit Gaussian for MSE runs."""
    model = posterior_model(recon)
    with torch.no_grad():
        mu, logvar = model.posterior(IMAGES)
        logits = model.decode_logits(mu)
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1)
        if recon == "bce":
            nll = F.binary_cross_entropy_with_logits(logits, IMAGES, reduction="none").flatten(1).sum(1)
        else:
            nll = 0.5 * (torch.sigmoid(logits) - IMAGES).pow(2).flatten(1).sum(1) + 0.5 * 784 * math.log(2 * math.pi)
    torch.testing.assert_close(diagnostics.negative_elbo_per_image(model, IMAGES), nll + kl)


def test_mse_and_bce_runs_get_different_elbos_for_the_same_weights():
    """The bug this replaces scored every run with BCE; the same weights under the two likelihoods must differ."""
    bce, mse = posterior_model("bce"), posterior_model("mse")
    mse.load_state_dict(bce.state_dict())
    gap = diagnostics.negative_elbo_per_image(mse, IMAGES) - diagnostics.negative_elbo_per_image(bce, IMAGES)
    assert gap.abs().min() > 1.0


def test_anomaly_score_follows_the_capabilities():
    by_kind = {}
    for name in MODELS:
        model = build_model(name, tiny_options(name)).eval()
        kind = diagnostics.anomaly_score_kind(model.capabilities)
        scores = diagnostics.anomaly_scores(model, IMAGES)
        assert scores.shape == (len(IMAGES),) and torch.isfinite(scores).all()
        by_kind.setdefault(kind, (model, scores))
    model, scores = by_kind["discriminator"]
    torch.testing.assert_close(scores, -model.realness(IMAGES))
    model, scores = by_kind["encoder"]
    with torch.no_grad():
        torch.testing.assert_close(scores, (model.decode(model.encode(IMAGES)) - IMAGES).pow(2).flatten(1).sum(1))


def test_roc_auc_is_one_when_separated_and_zero_when_inverted():
    assert diagnostics.roc_auc([0, 1, 2], [5, 6]) == 1.0
    assert diagnostics.roc_auc([5, 6], [0, 1, 2]) == 0.0
    assert diagnostics.roc_auc([1, 1], [1, 1]) == 0.5
    assert diagnostics.roc_auc([0, 2], [1, 3]) == 0.75  # 3 of the 4 (inlier, outlier) pairs are ordered right


def rank_auc(inliers, outliers) -> float:
    """The Mann-Whitney reference: (rank sum of the outliers - its minimum) / (n_in * n_out), ties at mid-rank."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([inliers, outliers]))
    n_in, n_out = len(inliers), len(outliers)
    return (ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out)


@pytest.mark.parametrize(
    "case",
    ["separated", "separated-inverted", "overlapping", "tied", "negative"],
)
def test_roc_auc_matches_a_rank_based_reference_at_realistic_magnitudes(case):
    """Scores like a VAE's negative ELBO (hundreds to thousands of nats), about 10^3 of them."""
    rng = np.random.default_rng(0)
    inliers, outliers = rng.normal(100, 20, 1000), rng.normal(2900, 100, 800)
    if case == "separated-inverted":
        inliers, outliers = outliers, inliers
    if case == "overlapping":
        outliers = rng.normal(130, 25, 800)
    if case == "tied":  # coarse scores: many exact ties within and across the two sets
        inliers, outliers = np.round(rng.normal(100, 20, 1000), -1), np.round(rng.normal(110, 20, 800), -1)
    if case == "negative":
        inliers, outliers = -rng.normal(3000, 50, 1000), -rng.normal(2950, 50, 800)
    expected = rank_auc(inliers, outliers)
    assert diagnostics.roc_auc(inliers, outliers) == pytest.approx(expected, abs=1e-9)
    assert {"separated": 1.0, "separated-inverted": 0.0}.get(case, expected) == pytest.approx(expected)
    if case in ("overlapping", "tied", "negative"):
        assert 0.5 < expected < 1.0


def test_anomaly_detection_rows_agree_with_the_rank_reference_on_the_same_scores():
    """The evaluation row's AUC is the rank-based AUC of the scores the dashboard histograms show, and its
    interval holds it."""
    model = build_model("vae", tiny_options("vae")).eval()
    images = torch.rand(64, 1, 28, 28).pow(4)
    row = diagnostics.anomaly_detection(model, images, seed=3, bootstrap=50)
    generator = torch.Generator().manual_seed(3)
    inliers = diagnostics.anomaly_scores(model, images).double().numpy()
    for kind in diagnostics.OOD_KINDS:
        outliers = diagnostics.anomaly_scores(model, diagnostics.out_of_distribution(images, kind, generator))
        auc = row[f"anomaly_auc_{kind}"]
        assert auc == pytest.approx(rank_auc(inliers, outliers.double().numpy()), abs=1e-6)
        assert row[f"anomaly_auc_{kind}_ci_low"] <= auc <= row[f"anomaly_auc_{kind}_ci_high"]
    assert row["anomaly_score"] == "posterior" and row["anomaly_n"] == 64


def test_out_of_distribution_inputs():
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(diagnostics.out_of_distribution(IMAGES, "inverted", generator), 1 - IMAGES)
    shuffled = diagnostics.out_of_distribution(IMAGES, "shuffled", generator)
    torch.testing.assert_close(shuffled.flatten(1).sort(1).values, IMAGES.flatten(1).sort(1).values)
    with pytest.raises(ValueError):
        diagnostics.out_of_distribution(IMAGES, "spiral", generator)


class _Copier:
    """A stand-in model whose decode(encode(x)) returns a fixed picture."""

    device = torch.device("cpu")

    def __init__(self, output):
        self.output = output

    def encode(self, x):
        return x

    def decode(self, z):
        return self.output


def test_denoise_says_whether_the_output_is_closer_than_the_noisy_input():
    clean = IMAGES
    noisy = diagnostics.noisy_copies(clean, 0.4, torch.Generator().manual_seed(1))
    perfect = diagnostics.denoise(_Copier(clean), clean, noisy)
    assert perfect["helps"] and perfect["output_mse"] == 0.0
    useless = diagnostics.denoise(_Copier(1 - clean), clean, noisy)
    assert not useless["helps"] and useless["output_mse"] > useless["input_mse"]


def _history(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_loss_balance_alarm_only_when_the_discriminator_wins():
    steps = 100
    assert diagnostics.loss_balance_alarms(_history(d_real=[0.99] * steps, d_fake=[0.01] * steps))
    assert not diagnostics.loss_balance_alarms(_history(d_real=[0.6] * steps, d_fake=[0.4] * steps))
    # only the end counts: D won early on, then the game balanced
    early = [0.99] * 80 + [0.6] * 20
    assert not diagnostics.loss_balance_alarms(_history(d_real=early, d_fake=[0.01] * 80 + [0.4] * 20))
    assert not diagnostics.loss_balance_alarms(_history(loss=[1.0] * steps))


def test_mode_collapse_alarm_below_the_threshold():
    assert diagnostics.mode_collapse_alarms({"modes": 2}, 10)
    assert not diagnostics.mode_collapse_alarms({"modes": 10}, 10)
    assert not diagnostics.mode_collapse_alarms({}, 10)
    autoencoder = capabilities_of_model("ae")
    (alarm,) = diagnostics.mode_collapse_alarms({"modes": 2, "sampler": "prior"}, 10, autoencoder)
    assert "holes" in alarm and "mode collapse" not in alarm.replace("not mode collapse", "")
    for name in ("vae", "dcgan"):
        (alarm,) = diagnostics.mode_collapse_alarms({"modes": 2, "sampler": "prior"}, 10, capabilities_of_model(name))
        assert alarm.endswith("(mode collapse).")
    (alarm,) = diagnostics.mode_collapse_alarms({"modes": 2, "sampler": "gmm"}, 10, autoencoder)
    assert alarm.endswith("(mode collapse).")  # a sampler fitted to its codes has no holes to blame


def test_loss_fluctuation_per_block():
    assert diagnostics.loss_fluctuation(_history(loss=[2.0] * 400), "loss") == [0.0] * diagnostics.FLUCTUATION_BLOCKS
    alternating = [1.0, 3.0] * 200  # every block: mean 2, sample std of ±1 around it
    blocks = diagnostics.loss_fluctuation(_history(loss=alternating), "loss")
    expected = torch.tensor([1.0, 3.0] * 4, dtype=torch.float64).std().item() / 2
    assert blocks == pytest.approx([expected] * diagnostics.FLUCTUATION_BLOCKS)
    assert diagnostics.loss_fluctuation(_history(loss=[1.0] * 10), "loss") is None
    assert diagnostics.loss_fluctuation(_history(loss=[1.0] * 400), "d_loss") is None


def test_rate_distortion_point_reads_the_end_of_training():
    history = _history(kl=[50.0] * 80 + [5.0] * 20, recon=[300.0] * 80 + [100.0] * 20)
    assert diagnostics.rate_distortion_point(history) == {"rate": 5.0, "distortion": 100.0}
    assert diagnostics.rate_distortion_point(_history(d_loss=[1.0])) is None


# -- comparisons ----------------------------------------------------------------------------------------------
ROW = {"fid": 10.0, "fid_ci_low": 9.0, "fid_ci_high": 11.0}


def test_identical_rows_are_no_clear_difference():
    assert compare(ROW, dict(ROW), "fid").outcome == NO_CLEAR_DIFFERENCE


def test_a_tie_without_intervals_is_untested_never_support():
    assert compare({"fid": 3.0}, {"fid": 5.0}, "fid").outcome == UNTESTED
    assert compare({"fid": 3.0}, {}, "fid").outcome == UNTESTED


def test_the_metrics_direction_decides_better():
    low = {
        "fid": 5.0,
        "fid_ci_low": 4.5,
        "fid_ci_high": 5.5,
        "recall": 0.4,
        "recall_ci_low": 0.38,
        "recall_ci_high": 0.42,
    }
    high = {
        "fid": 10.0,
        "fid_ci_low": 9.5,
        "fid_ci_high": 10.5,
        "recall": 0.8,
        "recall_ci_low": 0.78,
        "recall_ci_high": 0.82,
    }
    assert compare(low, high, "fid").outcome == BETTER  # lower FID is better
    assert compare(low, high, "recall").outcome == WORSE  # lower recall is worse
    assert compare(high, low, "fid").outcome == WORSE


def test_normal_approximation_matches_the_closed_form():
    a = {"fid": 10.0, "fid_ci_low": 10.0 - 1.96, "fid_ci_high": 10.0 + 1.96}  # se = 1
    b = {"fid": 13.0, "fid_ci_low": 13.0 - 1.96, "fid_ci_high": 13.0 + 1.96}
    result = compare(a, b, "fid")
    spread = 1.959963984540054 * math.sqrt(2) * (1.96 / 1.959963984540054)
    assert result.low == pytest.approx(-3 - spread) and result.high == pytest.approx(-3 + spread)
    assert result.outcome == BETTER


def test_bootstrap_replicates_give_the_percentile_interval_of_the_differences():
    a = {"fid": 1.0, "fid_boot": [float(v) for v in range(100)]}
    b = {"fid": 0.0, "fid_boot": [0.0] * 100}
    result = compare(a, b, "fid")
    assert result.low == pytest.approx(2.475) and result.high == pytest.approx(96.525)
    assert result.outcome == WORSE


def test_replicates_use_welch_and_a_metric_without_direction_says_higher_or_lower():
    a = {"active_units": 8.0, "active_units_replicates": [8.0, 8.1, 7.9]}
    b = {"active_units": 4.0, "active_units_replicates": [4.0, 4.1, 3.9]}
    assert compare(a, b, "active_units").outcome == HIGHER
    same = {"active_units": 8.0, "active_units_replicates": [7.0, 9.0, 8.0]}
    assert compare(a, same, "active_units").outcome == NO_CLEAR_DIFFERENCE
