"""alexlab.stats against scipy.stats: paired and Welch intervals, the probability of improvement, verdicts."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alexlab.stats import (
    compare,
    inside_margin,
    probability_of_improvement,
    seeds_needed,
    sequential_confidence,
    verdict,
)

VARIANT = {0: 25.1, 1: 24.3, 2: 26.0, 3: 25.4, 4: 24.9}
BASELINE = {0: 23.9, 1: 23.8, 2: 24.6, 3: 24.1, 4: 24.0}


def test_shared_seeds_give_the_paired_t_interval():
    c = compare(VARIANT, BASELINE)
    seeds = sorted(VARIANT)
    reference = scipy_stats.ttest_rel([VARIANT[s] for s in seeds], [BASELINE[s] for s in seeds])
    low, high = reference.confidence_interval(0.95)
    assert c.test == "paired t" and c.n_pairs == 5 and c.dof == 4
    assert c.estimate == pytest.approx(np.mean([VARIANT[s] - BASELINE[s] for s in seeds]))
    assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))


def test_pairing_narrows_the_interval_when_seeds_share_their_noise():
    """Each seed moves both sides alike (same data order, split, init): the paired interval sees only the change."""
    welch = compare({s + 10: v for s, v in VARIANT.items()}, BASELINE)  # no shared seeds
    paired = compare(VARIANT, BASELINE)
    assert welch.test == "Welch t"
    assert (paired.high - paired.low) < (welch.high - welch.low)


def test_unshared_seeds_give_welchs_interval():
    variant = {10: 25.1, 11: 24.3, 12: 26.0}
    c = compare(variant, BASELINE)
    reference = scipy_stats.ttest_ind(list(variant.values()), list(BASELINE.values()), equal_var=False)
    low, high = reference.confidence_interval(0.95)
    assert c.test == "Welch t" and c.n_pairs == 0
    assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))
    assert c.dof == pytest.approx(reference.df)


def test_only_the_shared_seeds_are_paired():
    variant = {**VARIANT, 9: 99.0}  # a seed the baseline did not run: not in the paired test
    assert compare(variant, BASELINE).estimate == pytest.approx(compare(VARIANT, BASELINE).estimate)
    assert compare(variant, BASELINE).n_variant == 6 and compare(variant, BASELINE).n_pairs == 5


def test_too_few_runs_give_no_interval():
    c = compare({0: 25.0}, {0: 24.0})
    assert c.test == "n/a" and c.estimate == pytest.approx(1.0) and c.low is None
    assert compare({}, BASELINE).estimate is None


def test_ratios_are_compared_on_the_log_scale():
    steps_v, steps_b = {0: 600, 1: 540, 2: 660}, {0: 100, 1: 95, 2: 110}
    c = compare(steps_v, steps_b, log_scale=True)
    ratio, low, high = c.ratio
    logs = [math.log(steps_v[s] / steps_b[s]) for s in steps_v]
    assert ratio == pytest.approx(math.exp(np.mean(logs)))  # the geometric mean of the ratios
    reference = scipy_stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert (low, high) == (pytest.approx(math.exp(reference.low)), pytest.approx(math.exp(reference.high)))
    with pytest.raises(ValueError, match="> 0"):
        compare({0: 0}, {0: 1}, log_scale=True)


def test_probability_of_improvement_paired_and_unpaired():
    # paired: the variant is lower on seeds 1 and 3, tied on 2
    variant, baseline = {1: 1.0, 2: 2.0, 3: 3.0, 4: 9.0}, {1: 2.0, 2: 2.0, 3: 4.0, 4: 5.0}
    p = probability_of_improvement(variant, baseline)
    assert p.paired and p.probability == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert 0.0 <= p.low <= p.probability <= p.high <= 1.0
    # unpaired: the Mann-Whitney U of the baseline over the variant, divided by n_v n_b
    variant, baseline = {10: 1.0, 11: 3.0, 12: 5.0}, {0: 2.0, 1: 3.0, 2: 6.0, 3: 7.0}
    p = probability_of_improvement(variant, baseline)
    u = scipy_stats.mannwhitneyu(list(baseline.values()), list(variant.values())).statistic
    assert not p.paired and p.probability == pytest.approx(u / (3 * 4))
    assert 0.0 <= p.low <= p.probability <= p.high <= 1.0
    assert probability_of_improvement(VARIANT, BASELINE).probability == 0.0  # the variant is worse on every seed


def test_the_probability_of_improvement_over_seeds_is_the_exact_binomial_interval():
    """Won k of n seeds: scipy's Clopper-Pearson interval, never the point that a bootstrap of a few seeds that all
    went one way collapses to (the study's report said 1.00 [1.00, 1.00] after 3 seeds)."""
    three = probability_of_improvement({0: 9.0, 1: 8.0, 2: 7.5}, {0: 9.5, 1: 8.5, 2: 8.0})
    reference = scipy_stats.binomtest(3, 3).proportion_ci(0.95, method="exact")
    assert three.paired and three.probability == 1.0
    assert (three.low, three.high) == (pytest.approx(reference.low), 1.0)
    assert three.low == pytest.approx(0.025 ** (1 / 3))  # 3 of 3: the low end solves p^3 = 0.025
    lost = probability_of_improvement(VARIANT, BASELINE)  # lost all 5
    assert (lost.low, lost.high) == (0.0, pytest.approx(1 - 0.025 ** (1 / 5)))
    # a tie counts half: won 1, tied 1, lost 2 of 4 -> the low end as for 1 win, the high end as for 2
    tied = probability_of_improvement({1: 1.0, 2: 2.0, 3: 5.0, 4: 9.0}, {1: 2.0, 2: 2.0, 3: 4.0, 4: 5.0})
    assert tied.probability == pytest.approx(1.5 / 4)
    assert tied.low == pytest.approx(scipy_stats.binomtest(1, 4).proportion_ci(0.95).low)
    assert tied.high == pytest.approx(scipy_stats.binomtest(2, 4).proportion_ci(0.95).high)
    # unpaired and every run of one side below every run of the other: every resample agrees, so no interval
    apart = probability_of_improvement({10: 1.0, 11: 2.0, 12: 3.0}, {0: 5.0, 1: 6.0, 2: 7.0})
    assert not apart.paired and apart.probability == 1.0 and apart.low is None and apart.high is None


def test_verdicts_read_the_interval_against_the_claims_side_and_the_margin():
    worse = compare(VARIANT, BASELINE)  # the variant's error is higher on every seed: interval above 0
    assert verdict(worse, direction=+1, margin=0.5) == "agrees"  # the claim: removing it raises the error
    assert verdict(worse, direction=-1, margin=0.5) == "contradicts"
    flat = compare({0: 24.0, 1: 24.1, 2: 23.9}, {0: 24.05, 1: 24.0, 2: 24.0})
    assert verdict(flat, direction=+1, margin=0.5) == "no effect"
    noisy = compare({0: 20.0, 1: 28.0, 2: 24.5}, {0: 24.0, 1: 24.0, 2: 24.0})
    assert noisy.low < 0 < noisy.high
    assert verdict(noisy, direction=+1, margin=0.5) == "undecided"
    # an interval across 0 is undecided on either side (the dropout claim's side is -1: fewer steps without it):
    # mirrored, the interval is [-high, -low], not [-low, -high]
    assert verdict(noisy, direction=-1, margin=0.5) == "undecided"
    better = compare(BASELINE, VARIANT)  # the variant's value lower on every seed: interval below 0
    assert better.high < 0
    assert verdict(better, direction=-1, margin=0.5) == "agrees"
    assert verdict(better, direction=+1, margin=0.5) == "contradicts"
    assert verdict(flat, direction=-1, margin=0.5) == "no effect"
    steps = compare({0: 236.0, 1: 200.0}, {0: 240.0, 1: 326.0}, log_scale=True)  # the study's dropout steps, seed 0/1
    assert steps.ratio[1] < 1 < steps.ratio[2]
    assert verdict(steps, direction=-1, margin=math.log(1.1)) == "undecided"
    assert verdict(compare({0: 1.0}, {0: 0.0}), direction=+1, margin=0.5) == "undecided"  # no interval yet


def test_inside_margin_says_whether_the_whole_interval_is_too_small_to_matter():
    small = compare({0: 24.1, 1: 24.12, 2: 24.09}, {0: 24.0, 1: 24.0, 2: 24.0})  # +0.1 on every seed
    assert 0 < small.low < small.high < 0.5
    assert verdict(small, direction=+1, margin=0.5) == "agrees" and inside_margin(small, 0.5)  # real, negligible
    assert not inside_margin(small, 0.05)
    assert inside_margin(compare({0: 24.0, 1: 24.1, 2: 23.9}, {0: 24.05, 1: 24.0, 2: 24.0}), 0.5)  # "no effect"
    assert not inside_margin(compare(VARIANT, BASELINE), 0.5)
    assert not inside_margin(compare({0: 1.0}, {0: 0.0}), 10.0)  # no interval, nothing to say


def test_seeds_needed_would_decide_at_the_observed_mean_and_spread():
    noisy = compare({0: 25.0, 1: 27.0, 2: 24.0}, {0: 24.0, 1: 24.5, 2: 24.0})
    n = seeds_needed(noisy, margin=0.5)
    assert n is not None and n > 3
    # with n seeds at this mean and spread, the paired interval excludes 0
    half = scipy_stats.t.ppf(0.975, n - 1) * noisy.spread / math.sqrt(n)
    assert half < abs(noisy.estimate)
    smaller = n - 1
    assert scipy_stats.t.ppf(0.975, smaller - 1) * noisy.spread / math.sqrt(smaller) >= abs(noisy.estimate)
    assert seeds_needed(compare({0: 1.0}, {0: 0.0}), margin=0.5) is None


def test_seeds_needed_takes_whichever_decision_comes_first():
    """A mean inside the margin but far from 0 is decided sooner by excluding 0 (a negligible `agrees`) than by
    fitting inside the margin; a mean near 0 sooner by fitting inside the margin."""
    near_margin = compare({0: 0.5, 1: 0.0, 2: 0.3}, {0: 0.0, 1: 0.0, 2: 0.0})  # mean 0.27, margin 0.3
    n = seeds_needed(near_margin, margin=0.3)
    half = scipy_stats.t.ppf(0.975, n - 1) * near_margin.spread / math.sqrt(n)
    assert half < near_margin.estimate and half > 0.3 - near_margin.estimate
    near_zero = compare({0: 0.25, 1: -0.2, 2: 0.01}, {0: 0.0, 1: 0.0, 2: 0.0})  # mean 0.02
    n = seeds_needed(near_zero, margin=0.3)
    half = scipy_stats.t.ppf(0.975, n - 1) * near_zero.spread / math.sqrt(n)
    assert abs(near_zero.estimate) < half < 0.3 - abs(near_zero.estimate)
    before = scipy_stats.t.ppf(0.975, n - 2) * near_zero.spread / math.sqrt(n - 1)
    assert before >= 0.3 - abs(near_zero.estimate)


def test_a_level_other_than_95_matches_scipy():
    seeds = sorted(VARIANT)
    reference = scipy_stats.ttest_rel([VARIANT[s] for s in seeds], [BASELINE[s] for s in seeds])
    c = compare(VARIANT, BASELINE, confidence=sequential_confidence(8))
    assert sequential_confidence(8) == pytest.approx(1 - 0.05 / 8) and sequential_confidence(1) == 0.95
    assert (c.low, c.high) == tuple(pytest.approx(x) for x in reference.confidence_interval(1 - 0.05 / 8))
    wider = probability_of_improvement(BASELINE, VARIANT, confidence=0.99)
    assert wider.low < probability_of_improvement(BASELINE, VARIANT).low  # 5 of 5 won: [0.35, 1] at 99%
    with pytest.raises(ValueError, match="whole number >= 1"):
        sequential_confidence(0)


def test_looking_after_every_round_keeps_false_verdicts_at_5_percent_only_at_the_sequential_level():
    """A true effect of zero, looked at after 3, 4, ..., 10 seeds, stopping at the first interval that excludes 0:
    at 95% a look, far more than 5% of such sweeps end with a false agrees/contradicts; at
    sequential_confidence(8), at most 5% do."""
    rng = np.random.default_rng(0)
    sweeps = 1500
    differences = rng.normal(size=(sweeps, 10))

    def false_verdicts(confidence):
        wrong = 0
        for d in differences:
            for n in range(3, 11):
                c = compare(dict(enumerate(d[:n])), dict.fromkeys(range(n), 0.0), confidence=confidence)
                if c.low > 0 or c.high < 0:
                    wrong += 1
                    break
        return wrong / sweeps

    assert false_verdicts(0.95) > 0.10
    assert false_verdicts(sequential_confidence(8)) <= 0.05
