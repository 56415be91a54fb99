"""Is run A better than run B on a metric? Only when the 95 % interval of the difference excludes zero.

A tie, or a difference whose interval straddles zero, is "no clear difference" — never support. The interval of
A − B comes from, in order of preference:

1. bootstrap replicates stored in both rows (``<metric>_boot``): the percentile interval of their differences
   (the two runs' samples are independent, so replicate i of A minus replicate i of B is a draw of A − B);
2. each row's own 95 % interval (``<metric>_ci_low/_ci_high``): a normal approximation, se = width / 3.92,
   se(A − B) = sqrt(se_A² + se_B²);
3. independent replicates (``<metric>_replicates``, e.g. one value per training seed of a group, with
   ``<metric>_replicates_of`` saying what they are): Welch's interval of the difference of the means.

Without any of them there is no test, and the comparison says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .metric_specs import metric

Z95 = 1.959963984540054
BETTER, WORSE, NO_CLEAR_DIFFERENCE, UNTESTED = "better", "worse", "no clear difference", "untested"
# a claim's verdict: three outcomes of a test, and "not measured yet" only when nothing could be tested
SUPPORTED, CONTRADICTED, NO_CLEAR, NOT_MEASURED = "supported", "contradicted", "no clear difference", "not measured yet"
VERDICT_OF_OUTCOME = {BETTER: SUPPORTED, WORSE: CONTRADICTED, NO_CLEAR_DIFFERENCE: NO_CLEAR, UNTESTED: NOT_MEASURED}
HIGHER, LOWER = "higher", "lower"  # for metrics without a better direction


@dataclass(frozen=True)
class Comparison:
    key: str
    value_a: float | None
    value_b: float | None
    low: float | None  # 95 % interval of value_a - value_b
    high: float | None
    outcome: str  # BETTER / WORSE (A vs B, by the metric's direction) / NO_CLEAR_DIFFERENCE / UNTESTED
    test: str  # how the interval was made, for the page

    @property
    def difference(self) -> float | None:
        return None if self.value_a is None or self.value_b is None else self.value_a - self.value_b

    def describe(self) -> str:
        if self.difference is None:
            return f"{metric(self.key).label}: not measured"
        text = f"{metric(self.key).label}: {self.value_a:.4g} vs {self.value_b:.4g}, difference {self.difference:+.3g}"
        if self.low is None:
            return text + " (no interval: recompute the metrics to get one)"
        return text + f", 95 % interval [{self.low:+.3g}, {self.high:+.3g}] ({self.test})"


def _bootstrap_interval(a: list, b: list) -> tuple[float, float]:
    count = min(len(a), len(b))
    diff = torch.tensor(a[:count], dtype=torch.float64) - torch.tensor(b[:count], dtype=torch.float64)
    return torch.quantile(diff, 0.025).item(), torch.quantile(diff, 0.975).item()


def _normal_interval(row_a: dict, row_b: dict, key: str) -> tuple[float, float]:
    se = [(row[f"{key}_ci_high"] - row[f"{key}_ci_low"]) / (2 * Z95) for row in (row_a, row_b)]
    spread = Z95 * math.hypot(*se)
    diff = row_a[key] - row_b[key]
    return diff - spread, diff + spread


def _welch_interval(a: list, b: list) -> tuple[float, float]:
    from scipy import stats

    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    va, vb = ta.var(unbiased=True).item() / len(a), tb.var(unbiased=True).item() / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else 1.0
    spread = stats.t.ppf(0.975, dof) * se
    diff = ta.mean().item() - tb.mean().item()
    return diff - spread, diff + spread


def difference_interval(row_a: dict, row_b: dict, key: str) -> tuple[float, float, str] | None:
    """95 % interval of row_a[key] - row_b[key] and the name of the test, or None when no interval exists."""
    reps_a, reps_b = row_a.get(f"{key}_replicates"), row_b.get(f"{key}_replicates")
    if reps_a and reps_b and len(reps_a) > 1 and len(reps_b) > 1:
        what = row_a.get(f"{key}_replicates_of", "replicates")
        return (*_welch_interval(reps_a, reps_b), f"Welch's t over {what}, n = {len(reps_a)} vs {len(reps_b)}")
    boot_a, boot_b = row_a.get(f"{key}_boot"), row_b.get(f"{key}_boot")
    if boot_a and boot_b:
        return (*_bootstrap_interval(boot_a, boot_b), f"bootstrap over samples, B = {min(len(boot_a), len(boot_b))}")
    if all(row.get(f"{key}_ci_low") is not None and row.get(f"{key}_ci_high") is not None for row in (row_a, row_b)):
        return (*_normal_interval(row_a, row_b, key), "normal approximation from each row's 95 % interval")
    return None


def compare(row_a: dict, row_b: dict, key: str) -> Comparison:
    """Whether A is better than B on ``key``, in the metric's own direction, tested as described above."""
    value_a, value_b = row_a.get(key), row_b.get(key)
    if value_a is None or value_b is None:
        return Comparison(key, value_a, value_b, None, None, UNTESTED, "not measured")
    interval = difference_interval(row_a, row_b, key)
    if interval is None:
        return Comparison(key, value_a, value_b, None, None, UNTESTED, "no interval")
    low, high, test = interval
    if low <= 0 <= high:
        outcome = NO_CLEAR_DIFFERENCE
    elif metric(key).higher_is_better is None:  # no better direction: say which way it differs
        outcome = HIGHER if low > 0 else LOWER
    else:
        outcome = BETTER if (low > 0) == metric(key).higher_is_better else WORSE
    return Comparison(key, value_a, value_b, low, high, outcome, test)


def combine_verdicts(verdicts: list[str]) -> str:
    """One verdict for a claim that rests on several tests, never at odds with any of them: contradicted when any
    test goes against the claim; supported only when every test supports it; not measured yet only when no test
    could be made; otherwise no clear difference."""
    if not verdicts or set(verdicts) == {NOT_MEASURED}:
        return NOT_MEASURED
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return SUPPORTED if set(verdicts) == {SUPPORTED} else NO_CLEAR


def verdict_of(comparisons: list[Comparison]) -> str:
    """The verdict of a claim that A beats B on every compared metric (each in its own direction)."""
    return combine_verdicts([VERDICT_OF_OUTCOME[c.outcome] for c in comparisons])
