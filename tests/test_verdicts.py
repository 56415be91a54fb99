"""A verdict never contradicts its evidence: property tests over random intervals, and the cases the issue
reported (a claim contradicted by its own interval must say so)."""

from __future__ import annotations

from hypothesis import given, settings
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
