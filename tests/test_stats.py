"""alexlab.stats against scipy.stats and published tables: paired and Welch intervals, the group sequential boundaries,
the verdicts on size and sign, Holm over the claims, and studies whose true answer is known, simulated: the chance of
any wrong verdict stays at 5% over the claims and the looks of a seeds=auto sweep."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alexlab.stats import (
    Claimed,
    Comparison,
    Looks,
    boundaries,
    compare,
    obrien_fleming_spending,
    read,
    read_claims,
    seeds_needed,
    seeds_won,
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
    assert c.interval(0.99) == (pytest.approx(reference.confidence_interval(0.99).low), pytest.approx(
        reference.confidence_interval(0.99).high))  # fmt: skip


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


def test_only_the_shared_seeds_are_paired_and_too_few_runs_give_no_interval():
    variant = {**VARIANT, 9: 99.0}  # a seed the baseline did not run: not in the paired test
    assert compare(variant, BASELINE).estimate == pytest.approx(compare(VARIANT, BASELINE).estimate)
    assert compare(variant, BASELINE).n_variant == 6 and compare(variant, BASELINE).n_pairs == 5
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


def test_seeds_won_counts_the_seeds_where_the_variant_is_lower_ties_half():
    assert seeds_won({1: 1.0, 2: 2.0, 3: 3.0, 4: 9.0, 7: 0.0}, {1: 2.0, 2: 2.0, 3: 4.0, 4: 5.0}) == (2.5, 4)
    assert seeds_won(VARIANT, BASELINE) == (0.0, 5)


# --- group sequential boundaries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "fractions", "published"),
    [
        # Lan-DeMets O'Brien-Fleming-type spending, two-sided 5% (2.5% a side), equally spaced looks: the values
        # tabled by Jennison and Turnbull (2000, Table 7.6) and computed by R's ldbounds / gsDesign (sfLDOF)
        (0.05, (1 / 3, 2 / 3, 1.0), (3.7103, 2.5114, 1.9930)),
        (0.05, (0.25, 0.5, 0.75, 1.0), (4.3326, 2.9631, 2.3590, 2.0141)),
        (0.05, (0.2, 0.4, 0.6, 0.8, 1.0), (4.8769, 3.3569, 2.6803, 2.2898, 2.0310)),
    ],
)
def test_the_boundaries_are_the_published_ones(alpha, fractions, published):
    assert boundaries(alpha, fractions) == pytest.approx(published, abs=2e-4)


def test_one_look_is_a_plain_test_and_the_spending_reaches_alpha_at_the_end():
    assert boundaries(0.05, (1.0,)) == pytest.approx((scipy_stats.norm.isf(0.025),))
    assert obrien_fleming_spending(0.05, 1.0) == pytest.approx(0.05)
    assert obrien_fleming_spending(0.05, 0.3) < 0.001  # O'Brien-Fleming: little spent early
    # a fixed number of seeds looks once: its critical value is the t quantile
    assert Looks().critical(0.05, 5, 4) == pytest.approx(scipy_stats.t.isf(0.025, 4))
    # at the last of the looks 3..10, the boundary is near a single test's, far below Bonferroni over the 8 looks
    last = Looks(3, 10).critical(0.05, 10, 9)
    assert scipy_stats.t.isf(0.025, 9) < last < 2.5 < scipy_stats.t.isf(0.05 / 16, 9)


def test_the_boundaries_hold_the_error_rate_of_a_brownian_motion_at_alpha():
    """Z at looks 3..10 of 10 from one Brownian path under no effect: the chance of crossing any boundary is 5%."""
    rng = np.random.default_rng(1)
    fractions = np.arange(3, 11) / 10
    c = np.array(boundaries(0.05, tuple(fractions)))
    steps = rng.normal(size=(200_000, len(fractions))) * np.sqrt(np.diff(fractions, prepend=0.0))
    z = np.cumsum(steps, axis=1) / np.sqrt(fractions)
    crossed = (np.abs(z) >= c).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=3 * math.sqrt(0.05 * 0.95 / len(z)))


# --- verdicts -----------------------------------------------------------------------------------------------------


def paired(mean: float, sd: float, n: int) -> Comparison:
    """A paired comparison with this mean and spread over n seeds."""
    return Comparison("paired t", n, n, n, mean, sd / math.sqrt(n), n - 1, sd)


@pytest.mark.parametrize(
    ("mean", "sd", "verdict"),
    [
        (1.6, 0.2, "agrees"),  # on the claim's side, the claimed 1.4 inside
        (3.0, 0.2, "agrees"),  # beyond the claimed size: still as claimed
        (0.6, 0.2, "agrees, smaller"),  # on the claim's side, 1.4 excluded
        (-0.8, 0.2, "contradicts"),
        (0.02, 0.05, "no effect"),  # inside +-0.25
        (-0.2, 0.5, "rules out the claimed size"),  # the sign open, 1.4 excluded
        (0.8, 2.0, "undecided"),
    ],
)
def test_a_claim_is_read_on_its_size_and_its_sign(mean, sd, verdict):
    claim = Claimed(direction=+1, size=1.4, margin=0.25)
    assert read(paired(mean, sd, 10), claim, 0.05).verdict == verdict
    # the same from the other side: a claim that the variant's value is lower, on mirrored values
    assert read(paired(-mean, sd, 10), Claimed(-1, 1.4, 0.25), 0.05).verdict == verdict


def test_no_effect_uses_the_band_at_twice_alpha_as_the_two_one_sided_tests_do():
    """TOST at 5%: the 90% interval inside the margin. An effect whose 90% interval fits and whose 95% does not is
    no effect; the band's ends are the 90% interval."""
    c = paired(0.05, 0.3, 10)
    ninety, ninety_five = c.interval(0.90), c.interval(0.95)
    assert ninety[1] < 0.25 < ninety_five[1]
    reading = read(c, Claimed(+1, None, 0.25), 0.05)
    assert reading.verdict == "no effect" and reading.band == pytest.approx(ninety)
    assert reading.sign == pytest.approx(ninety_five)


def test_a_claim_without_a_size_has_no_size_part():
    assert read(paired(0.6, 0.2, 10), Claimed(+1, None, 0.25), 0.05).verdict == "agrees"
    assert read(paired(-0.2, 0.5, 10), Claimed(+1, None, 0.25), 0.05).verdict == "undecided"


def test_an_effect_real_and_inside_the_margin_is_negligible_and_fully_resolved():
    reading = read(paired(0.12, 0.03, 10), Claimed(+1, 1.4, 0.25), 0.05)
    assert reading.verdict == "agrees, smaller" and reading.negligible and reading.resolved
    assert not read(paired(1.6, 0.2, 10), Claimed(+1, 1.4, 0.25), 0.05).resolved  # its size is still open


def test_holm_shares_the_error_rate_out_over_the_claims_and_passes_on_a_resolved_claims_share():
    loose = paired(0.5, 1.0, 10)
    items = [(loose, Claimed(+1, 1.4, 0.25)) for _ in range(4)]
    assert [r.alpha for r in read_claims(items)] == pytest.approx([0.0125] * 4)
    resolved = (paired(0.12, 0.03, 10), Claimed(+1, 1.4, 0.25))  # real, negligible: every hypothesis rejected
    readings = read_claims([resolved, *items[:3]])
    assert readings[0].resolved and readings[0].alpha == pytest.approx(0.0125)
    assert [r.alpha for r in readings[1:]] == pytest.approx([0.05 / 3] * 3)


def test_seeds_needed_are_the_fewest_that_would_decide_at_the_observed_spread():
    claim = Claimed(+1, None, 0.25)
    c = paired(1.0, 2.0, 4)
    n = seeds_needed(c, claim, 0.05)
    assert read(paired(1.0, 2.0, n), claim, 0.05).verdict == "agrees"
    assert read(paired(1.0, 2.0, n - 1), claim, 0.05).verdict == "undecided"
    assert seeds_needed(Comparison("n/a", 1, 1, 1, 0.5, None, None, None), claim, 0.05) is None


# --- studies whose true answer is known ---------------------------------------------------------------------------

CLAIMS, MARGIN, SIZE, LOOKS = 6, 0.25, 1.0, Looks(3, 10)


def simulate(true_effect: float, studies: int, seed: int) -> float:
    """The share of simulated seeds=auto studies with any wrong verdict at any look: CLAIMS claims, each a variant
    against one shared baseline (so their differences are correlated, as a study's are), seed-to-seed spread 1,
    looks after 3..10 seeds; a claim decided at a look gets no more seeds, as its arm in the seed rounds sweeper."""
    rng = np.random.default_rng(seed)
    claim = Claimed(+1, SIZE, MARGIN)
    wrong_verdicts = {0.0: {"agrees", "agrees, smaller", "contradicts"},  # Δ = 0: any sign is wrong
                      SIZE: {"agrees, smaller", "contradicts", "no effect", "rules out the claimed size"}}  # fmt: skip
    wrong = 0
    for _ in range(studies):
        base = rng.normal(size=LOOKS.last)
        variants = rng.normal(size=(CLAIMS, LOOKS.last)) + true_effect
        seeds = [LOOKS.first] * CLAIMS
        for _ in range(LOOKS.first, LOOKS.last + 1):  # the looks
            items = []
            for i in range(CLAIMS):
                differences = variants[i, : seeds[i]] - base[: seeds[i]]
                sd = differences.std(ddof=1)
                items.append((Comparison("paired t", seeds[i], seeds[i], seeds[i], differences.mean(),
                                         sd / math.sqrt(seeds[i]), seeds[i] - 1, sd), claim))  # fmt: skip
            verdicts = [reading.verdict for reading in read_claims(items, LOOKS)]
            if any(v in wrong_verdicts[true_effect] for v in verdicts):
                wrong += 1
                break
            if all(v != "undecided" for v in verdicts):
                break
            seeds = [n + (v == "undecided") for n, v in zip(seeds, verdicts, strict=True)]
    return wrong / studies


@pytest.mark.parametrize("true_effect", [0.0, SIZE])
def test_a_study_is_wrong_at_most_five_percent_of_the_time_over_its_claims_and_looks(true_effect):
    """No effect anywhere (every sign verdict wrong), and effects exactly the claimed size (every size verdict,
    contradiction and no effect wrong): the share of studies with any wrong verdict at any look stays at or below
    5%, to three Monte-Carlo standard errors."""
    studies = 600
    rate = simulate(true_effect, studies, seed=3)
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / studies), rate


@pytest.mark.slow
@pytest.mark.parametrize("true_effect", [0.0, SIZE])
def test_the_error_rate_of_a_study_to_a_finer_precision(true_effect):
    studies = 5000
    assert simulate(true_effect, studies, seed=4) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / studies)
