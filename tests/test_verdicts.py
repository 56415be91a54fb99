"""A verdict never contradicts its evidence: property tests over random intervals, and the known
case of a claim its own interval contradicts (the verdict must say so)."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from evaluation.comparison import (
    BETTER,
    CONTRADICTED,
    NO_CLEAR,
    NOT_MEASURED,
    SUPPORTED,
    UNTESTED,
    WORSE,
    compare,
    verdict_of,
)
from evaluation.metric_specs import metric

KEYS = ("fid", "recall", "recon_mse", "sharpness", "coverage")
values = st.floats(0.01, 100, allow_nan=False)
half_widths = st.floats(0, 50, allow_nan=False)


@st.composite
def row_pairs(draw):
    """Two rows over a random subset of metrics, each value with a random 95 % interval or none."""
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    rows = ({}, {})
    for key in keys:
        for row in rows:
            value = draw(values)
            row[key] = value
            if draw(st.integers(0, 4)):  # most values carry an interval
                width = draw(half_widths)
                row |= {f"{key}_ci_low": max(0.0, value - width), f"{key}_ci_high": value + width}
    return keys, rows


@settings(max_examples=400, deadline=None)
@given(row_pairs())
def test_the_verdict_agrees_with_every_interval_it_rests_on(case):
    keys, (row_a, row_b) = case
    comparisons = [compare(row_a, row_b, key) for key in keys]
    verdict = verdict_of(comparisons)
    tested = [c for c in comparisons if c.outcome != UNTESTED]
    for c in tested:  # the outcome itself follows the interval and the metric's direction
        if c.low > 0 or c.high < 0:
            favours_a = (c.low > 0) == metric(c.key).higher_is_better
            assert c.outcome == (BETTER if favours_a else WORSE)
        else:
            assert c.outcome not in (BETTER, WORSE)
    against = [c for c in tested if c.outcome == WORSE]
    if against:
        assert verdict == CONTRADICTED
    if verdict == SUPPORTED:
        assert all(c.outcome == BETTER for c in comparisons)  # every part measured, every interval in favour
    if verdict == NOT_MEASURED:
        assert not tested
    if verdict == NO_CLEAR:
        assert tested and not against and not all(c.outcome == BETTER for c in comparisons)
    assert verdict in (SUPPORTED, CONTRADICTED, NO_CLEAR, NOT_MEASURED)


def row(**values) -> dict:
    """Values with a ±5 % interval."""
    out = {}
    for key, value in values.items():
        out |= {key: value, f"{key}_ci_low": value * 0.95, f"{key}_ci_high": value * 1.05}
    return out


def test_a_recall_difference_in_the_gans_favour_contradicts_the_vae_covers_more_modes():
    vae, gan = row(recall=0.30, coverage=0.50), row(recall=0.60, coverage=0.52)
    comparisons = [compare(vae, gan, key) for key in ("recall", "coverage")]
    assert [c.outcome for c in comparisons] == [WORSE, "no clear difference"]
    assert verdict_of(comparisons) == CONTRADICTED


def test_a_fid_difference_against_the_beta_claim_is_not_hidden_by_an_untested_part():
    big_beta, small_beta = row(fid=12.0), row(fid=6.0)
    small_beta["recon_mse"], big_beta["recon_mse"] = 0.01, 0.03  # no interval: untested
    verdict = verdict_of([compare(big_beta, small_beta, "fid"), compare(small_beta, big_beta, "recon_mse")])
    assert verdict == CONTRADICTED  # it said "not measured yet" while its own FID difference contradicted it


# --- the disentanglement claims (MIG, on a data set with known factors) ------------------------------------------

DISENTANGLED = (
    "A larger β gives a more disentangled latent space (higher MIG).",
    "The VAE's latent space is more disentangled than the GAN's (higher MIG).",
    "The VAE's latent space is more disentangled than the plain autoencoder's (higher MIG).",
)


def sprite_runs(tmp_path, dataset: str = "sprites") -> list:
    """A VAE (β = 1), a β = 4 VAE of the same recipe, an autoencoder and a GAN trained on ``dataset``."""
    from evaluation.runs import Run

    def record(name, model, config):
        return Run(name, tmp_path / name, {"model": model, "model_config": config, "dataset": dataset, "step": 9})

    return [
        record("v", "vae", {"beta": 1.0}),
        record("v4", "vae", {"beta": 4.0}),
        record("a", "ae", {}),
        record("g", "dcgan", {}),
    ]


def mig_rows(migs: dict, half_widths: dict) -> list[dict]:
    return [
        {"run": name, "mig": value, "mig_ci_low": value - half_widths[name], "mig_ci_high": value + half_widths[name]}
        for name, value in migs.items()
    ]


def disentanglement_verdicts(runs, rows) -> list[str]:
    from evaluation import findings

    found = {f.claim: f for f in findings.assess(runs, rows)}
    return [found[claim].verdict for claim in DISENTANGLED]


def expected(a: float, b: float, width_a: float, width_b: float) -> str:
    """A better than B on MIG: the difference's interval from two symmetric 95 % intervals is a − b ± √(wa² + wb²)."""
    spread = (width_a**2 + width_b**2) ** 0.5
    return SUPPORTED if a - b > spread else CONTRADICTED if a - b < -spread else NO_CLEAR


migs = st.floats(0, 1, allow_nan=False)
widths = st.floats(0.001, 0.3, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.tuples(migs, migs, migs, migs), st.tuples(widths, widths, widths, widths))
def test_the_disentanglement_verdicts_follow_the_mig_intervals(tmp_path_factory, values, half_widths):
    names = ("v", "v4", "a", "g")
    value, width = dict(zip(names, values)), dict(zip(names, half_widths))
    pairs = (("v4", "v"), ("v", "g"), ("v", "a"))  # each claim: the first beats the second
    for high, low in pairs:  # away from the boundary, where rounding could go either way
        spread = (width[high] ** 2 + width[low] ** 2) ** 0.5
        assume(abs(abs(value[high] - value[low]) - spread) > 1e-9)
    runs = sprite_runs(tmp_path_factory.getbasetemp())
    got = disentanglement_verdicts(runs, mig_rows(value, width))
    assert got == [expected(value[a], value[b], width[a], width[b]) for a, b in pairs]


def test_disentanglement_claims_say_what_is_missing(tmp_path):
    sprites = sprite_runs(tmp_path)
    no_mig = [{"run": name, "fid": 3.0} for name in ("v", "v4", "a", "g")]
    assert disentanglement_verdicts(sprites, no_mig) == [NOT_MEASURED] * 3
    from evaluation import findings

    found = {f.claim: f.evidence for f in findings.assess(sprites, no_mig)}
    assert all("compute the metrics" in found[claim] for claim in DISENTANGLED)
    digits = sprite_runs(tmp_path, "mnist5k")  # no known factors: the claim cannot be measured there at all
    found = {f.claim: f for f in findings.assess(digits, no_mig)}
    assert all(
        found[c].verdict == NOT_MEASURED and "no known generative factors" in found[c].evidence for c in DISENTANGLED
    )
    one_vae = [sprites[0], sprites[3]]  # no β pair, no autoencoder
    found = {f.claim: f for f in findings.assess(one_vae, mig_rows({"v": 0.4, "g": 0.1}, {"v": 0.01, "g": 0.01}))}
    assert [found[c].verdict for c in DISENTANGLED] == [NOT_MEASURED, SUPPORTED, NOT_MEASURED]
    assert "two VAE runs" in found[DISENTANGLED[0]].evidence and "autoencoder" in found[DISENTANGLED[2]].evidence


def test_the_beta_prior_finding_sums_the_kl_in_one_clause(tmp_path):
    """The β = 4 run switched five of eight dimensions off: the evidence says so in a count and a total, not a list
    of sixteen numbers."""
    from evaluation import findings

    runs = sprite_runs(tmp_path)
    kl_high = [2.0, 1.5, 0.5, 0.05, 0.01, 0.0, 0.02, 0.03]
    rows = [
        {"run": "v", "fid": 6.0, "kl_per_dim": [1.0] * 8, "active_units": 8},
        {"run": "v4", "fid": 5.0, "kl_per_dim": kl_high, "active_units": 3},
    ]
    found = {f.claim: f for f in findings.assess(runs, rows)}
    evidence = found["A larger β gives a more regular latent space: better prior samples (lower FID)."].evidence
    assert "KL 4.11 nats, 3 of 8 dimensions carrying ≥ 0.1 nats" in evidence
    assert "KL 8 nats, 8 of 8 dimensions" in evidence
    assert "0.05" not in evidence  # no per-dimension list
