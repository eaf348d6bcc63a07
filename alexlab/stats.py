"""The arithmetic of `alexlab report`: how sure a comparison of a variant against the baseline is, over seeds.

Values come as {seed: value} per side. Runs with the same seed share their data order, validation split,
augmentation draws and initial weights' generator, so where the two sides share seeds the comparison is paired: the
95% interval is the paired t interval of the seed-matched differences (variant minus baseline), mean
+- t(0.975, n - 1) * sd / sqrt(n) over the n seeds both sides ran (at another level, its t quantile). Where fewer
than two seeds match, it is Welch's interval for two independent samples (Welch-Satterthwaite degrees of freedom).
A ratio (steps to reach a training error) is compared as the difference of logarithms, i.e. a geometric-mean ratio
with its interval.

The probability of improvement is the chance that the variant's value is lower (better: a lower error, fewer steps,
a smaller gap) than the baseline's: over matched seeds, the fraction of seeds where it is (ties count half;
Bouthillier et al., MLSys 2021); unpaired, P(X_variant < X_baseline) over all pairs of runs (the Mann-Whitney U
statistic over n_v n_b, as rliable's probability of improvement, Agarwal et al., NeurIPS 2021). Its 95% interval (or
at the level asked for): over matched seeds, the exact binomial (Clopper-Pearson) interval of the seeds won (3 of 3
seeds won: [0.29, 1.00]); unpaired, a percentile bootstrap stratified by side, 2,000 resamples with a fixed
generator so that a report is reproducible, and none where every resample gives the same value.

The level is 95% unless a caller asks for another (`confidence`): a sweep that looks at its verdicts after each
seed round and stops once they are decided (seeds=auto) reads each look at `sequential_confidence(looks)`, 95%
shared out over the looks (Bonferroni), so that the chance of a false verdict over the whole sweep stays at 5%;
reading 95% at every look and stopping at the first decision would raise it (about 17% for a true zero effect
looked at after 3, 4, ..., 10 seeds).

A verdict reads an interval against a claim's direction and a margin: `agrees` (the interval excludes 0 on the
claim's side), `contradicts` (it excludes 0 on the other side), `no effect` (it lies inside +-margin), else
`undecided`, with the number of seeds that the observed spread says would decide it. An interval that excludes 0
and still lies inside +-margin is both: the verdict is `agrees` or `contradicts`, and `inside_margin` says it is
negligible.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from alexlab.errors import BadValue

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
MAX_SEEDS_NEEDED = 1000  # beyond this, "seeds needed" is reported as more than it
VERDICTS = ("agrees", "contradicts", "no effect", "undecided")


@dataclass(frozen=True)
class Comparison:
    """variant against baseline. For a ratio, estimate/low/high are on the log scale (see `ratio`)."""

    test: str  # "paired t", "Welch t" or "n/a" (fewer than 2 runs on a side)
    n_variant: int
    n_baseline: int
    n_pairs: int  # seeds both sides ran (those the paired test uses)
    estimate: float | None  # mean difference (paired: of the differences), variant minus baseline
    low: float | None
    high: float | None
    dof: float | None
    spread: float | None  # sd of one difference: of the paired differences, or sqrt(s_v^2 + s_b^2) for Welch
    log_scale: bool = False

    @property
    def ratio(self) -> tuple[float | None, float | None, float | None]:
        """(geometric-mean ratio, low, high) of a log-scale comparison."""
        return tuple(None if v is None else math.exp(v) for v in (self.estimate, self.low, self.high))


def sequential_confidence(looks: int) -> float:
    """The level of each look of a sweep that may stop at any of `looks` looks: 1 - 5% / looks (Bonferroni: the
    chance of a false verdict at any of them is at most 5%)."""
    if not (isinstance(looks, int) and looks >= 1):
        raise BadValue(f"looks must be a whole number >= 1, got {looks}")
    return 1 - (1 - CONFIDENCE) / looks


def t_quantile(confidence: float, dof: float) -> float:
    """The two-sided t quantile of a `confidence` interval."""
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def compare(variant: dict, baseline: dict, log_scale: bool = False, confidence: float = CONFIDENCE) -> Comparison:
    """The difference variant minus baseline with its `confidence` (95%) interval: paired t over shared seeds (at
    least 2), else Welch t. log_scale compares log(values) (ratios; values must be > 0)."""
    v = {seed: _log(x) if log_scale else float(x) for seed, x in variant.items()}
    b = {seed: _log(x) if log_scale else float(x) for seed, x in baseline.items()}
    shared = sorted(set(v) & set(b), key=str)
    counts = {"n_variant": len(v), "n_baseline": len(b), "n_pairs": len(shared), "log_scale": log_scale}
    if len(shared) >= 2:
        differences = np.array([v[seed] - b[seed] for seed in shared])
        mean, sd = float(differences.mean()), float(differences.std(ddof=1))
        half = t_quantile(confidence, len(shared) - 1) * sd / math.sqrt(len(shared))
        return Comparison("paired t", **counts, estimate=mean, low=mean - half, high=mean + half,
                          dof=len(shared) - 1, spread=sd)  # fmt: skip
    if not v or not b:
        return Comparison("n/a", **counts, estimate=None, low=None, high=None, dof=None, spread=None)
    mean = float(np.mean(list(v.values())) - np.mean(list(b.values())))
    if len(v) < 2 or len(b) < 2:  # no interval; a seed both ran gives the better point (its noise shared)
        point = v[shared[0]] - b[shared[0]] if shared else mean
        return Comparison("n/a", **counts, estimate=point, low=None, high=None, dof=None, spread=None)
    var_v, var_b = np.var(list(v.values()), ddof=1), np.var(list(b.values()), ddof=1)
    se2 = var_v / len(v) + var_b / len(b)
    spread = float(math.sqrt(var_v + var_b))
    if se2 == 0:  # no spread on either side: the interval is the point
        return Comparison("Welch t", **counts, estimate=mean, low=mean, high=mean, dof=None, spread=0.0)
    dof = se2**2 / ((var_v / len(v)) ** 2 / (len(v) - 1) + (var_b / len(b)) ** 2 / (len(b) - 1))
    half = t_quantile(confidence, dof) * math.sqrt(se2)
    return Comparison("Welch t", **counts, estimate=mean, low=mean - half, high=mean + half, dof=float(dof),
                      spread=spread)  # fmt: skip


def _log(value: float) -> float:
    if not value > 0:
        raise BadValue(f"a ratio needs values > 0, got {value}")
    return math.log(value)


@dataclass(frozen=True)
class Improvement:
    probability: float | None  # P(variant's value < baseline's), ties half
    low: float | None
    high: float | None
    paired: bool


def probability_of_improvement(variant: dict, baseline: dict, confidence: float = CONFIDENCE) -> Improvement:
    """P(the variant's value is lower than the baseline's) with a `confidence` (95%) interval: over matched seeds,
    the exact (Clopper-Pearson) binomial interval of the seeds won; unpaired, a percentile bootstrap over the runs."""
    shared = sorted(set(variant) & set(baseline), key=str)
    if len(shared) >= 2:
        v = np.array([variant[seed] for seed in shared], dtype=float)
        b = np.array([baseline[seed] for seed in shared], dtype=float)
        point = float(_wins(v, b))
        low, high = _seeds_won_interval(point * len(shared), len(shared), confidence)
        return Improvement(point, low, high, paired=True)
    if not variant or not baseline:
        return Improvement(None, None, None, paired=False)
    v, b = np.array(list(variant.values()), dtype=float), np.array(list(baseline.values()), dtype=float)
    point = float(_pairs_won(v, b))
    if len(v) < 2 or len(b) < 2:
        return Improvement(point, None, None, paired=False)
    low, high = _bootstrap((v, b), _pairs_won, confidence)
    return Improvement(point, low, high, paired=False)


def _seeds_won_interval(won: float, seeds: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact binomial (Clopper-Pearson) interval, at `confidence`, of the chance of winning a seed, having won
    `won` of `seeds` (a tie counts half: the low end is taken from the wins without it, the high end with it).
    Not a bootstrap: resampling a handful of seeds that all went one way gives that same fraction every time, a
    [1.00, 1.00] interval claiming certainty from 3 seeds; the binomial interval of 3 wins in 3 is [0.29, 1.00]."""
    low = stats.binomtest(math.floor(won), seeds).proportion_ci(confidence, method="exact").low
    high = stats.binomtest(math.ceil(won), seeds).proportion_ci(confidence, method="exact").high
    return float(low), float(high)


def _wins(v, b):
    """Matched seeds: the fraction where v < b, ties half."""
    return np.mean((v < b) + 0.5 * (v == b))


def _pairs_won(v, b, axis=-1):
    """All pairs (one run of each side): P(v < b) + P(v = b) / 2, the Mann-Whitney U of b over v / (n_v n_b)."""
    v, b = np.moveaxis(np.asarray(v), axis, -1), np.moveaxis(np.asarray(b), axis, -1)
    less = (v[..., :, None] < b[..., None, :]).mean(axis=(-1, -2))
    equal = (v[..., :, None] == b[..., None, :]).mean(axis=(-1, -2))
    return less + 0.5 * equal


def _bootstrap(samples, statistic, confidence: float) -> tuple[float | None, float | None]:
    """A percentile-bootstrap interval at `confidence`; none where every resample gives the same value (e.g. every
    run of one side below every run of the other): a single point would claim a certainty that a few runs cannot
    give."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate resample distribution: see below
        result = stats.bootstrap(
            samples,
            statistic,
            paired=False,
            vectorized=True,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(0),
        )
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        return None, None
    return float(low), float(high)


def verdict(comparison: Comparison, direction: int, margin: float) -> str:
    """`direction` +1: the claim says the variant's value is higher than the baseline's (a higher error, more
    steps, a larger gap); -1: lower. `margin`: the half-width of "no effect", in the comparison's own units (points;
    for a log-scale comparison, a log ratio)."""
    if direction not in (1, -1):
        raise BadValue(f"direction must be +1 or -1, got {direction}")
    if comparison.low is None or comparison.high is None:
        return "undecided"
    # the claim's side positive: for direction -1 the interval is mirrored, its high end becoming its low end
    low, high = sorted((comparison.low * direction, comparison.high * direction))
    if low > 0:
        return "agrees"
    if high < 0:
        return "contradicts"
    if inside_margin(comparison, margin):
        return "no effect"
    return "undecided"


def inside_margin(comparison: Comparison, margin: float) -> bool:
    """The whole interval within +-margin: an effect too small to matter, whether or not the interval excludes 0
    (an `agrees` or `contradicts` verdict inside the margin is a real but negligible effect)."""
    if comparison.low is None or comparison.high is None:
        return False
    return -margin <= comparison.low and comparison.high <= margin


def seeds_needed(comparison: Comparison, margin: float, confidence: float = CONFIDENCE) -> int | None:
    """How many seeds per side the observed spread says would decide an undecided comparison: the fewest n whose
    `confidence` (95%) interval, at the observed mean and spread, would exclude 0 or fit inside +-margin. None
    without a spread to go by; MAX_SEEDS_NEEDED + 1 for "more than MAX_SEEDS_NEEDED"."""
    if comparison.estimate is None or comparison.spread is None:
        return None
    mean = abs(comparison.estimate)
    # decided once the half-width is below the mean (the interval excludes 0) or below margin - mean (it fits
    # inside +-margin), whichever comes first
    target = max(mean, margin - mean)
    if comparison.spread == 0:
        return max(2, comparison.n_pairs or min(comparison.n_variant, comparison.n_baseline))
    if target <= 0:
        return MAX_SEEDS_NEEDED + 1
    paired = comparison.test == "paired t"
    for n in range(2, MAX_SEEDS_NEEDED + 1):
        dof = n - 1 if paired else 2 * n - 2
        if t_quantile(confidence, dof) * comparison.spread / math.sqrt(n) < target:
            return n
    return MAX_SEEDS_NEEDED + 1
