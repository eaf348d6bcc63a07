"""The arithmetic of `alexlab report`: how a variant compares with the baseline over seeds, and the verdict on each of
the paper's claims, with the chance of any wrong verdict held at 5% over a whole study.

**Comparisons.** Values come as {seed: value} per side. Runs with the same seed share their data order, validation
split, augmentation draws and initial weights' generator, so where the two sides share seeds the comparison is
paired: the mean of the seed-matched differences (variant minus baseline) with its standard error sd / sqrt(n) and
n - 1 degrees of freedom (the paired t test). Where fewer than two seeds match, Welch's two-sample comparison
(Welch-Satterthwaite degrees of freedom). A ratio (steps to reach a training error) is compared as the difference of
logarithms, i.e. a geometric-mean ratio. `Comparison.interval(confidence)` is its plain t interval, as the tables of
configurations show it.

**Verdicts.** A claim says which way a change moves a measure (its direction), often by how much (its size: 1.4
points, 6x), and the study says how small a change does not matter (the margin). Each claim is read from two
intervals of its comparison at the claim's share `alpha` of the study's error rate:

- the sign interval, at 1 - alpha (two-sided): `agrees` where it excludes 0 on the claim's side, `contradicts` on
  the other side;
- the band, at 1 - 2 alpha (each of its ends a one-sided bound at alpha): `no effect` where it lies inside
  +-margin (the two one-sided tests of equivalence, TOST; Schuirmann 1987), and, for a claim with a size, `smaller
  than claimed` where its claim-side end falls short of the size: `agrees, smaller` with a sign that agrees,
  `rules out the claimed size` with a sign still open.

Otherwise `undecided`, with the seeds per side that the observed spread says would decide it. Whatever the true
effect, a wrong statement about a claim needs its true value outside one of these bounds on one side, so reading
all of them costs the claim `alpha`, not more: a true effect of 0 can only be misread by the sign interval (alpha,
two-sided); a true effect beyond the size or the margin only by a band end below it (alpha, one-sided).

**Over the claims of a study (Holm 1979).** Each claim that can be tested gets alpha = 5% / (the claims not yet
fully resolved), starting from 5% / the number of claims. A claim is fully resolved once every hypothesis it holds
is rejected (its sign decided, its size excluded, and inside the margin): its share then goes to the others, and
the claims are read again, until no more are resolved. This is Holm's step-down over the claims, the closed test of
all their hypotheses with Bonferroni's test of each intersection; within a claim no split is needed (the paragraph
above). In practice a claim is fully resolved only where its effect is real and too small to matter, so most claims
are read at 5% over the number of claims.

**Over the looks of a seeds=auto sweep (Lan and DeMets 1983).** A sweep that looks at its verdicts after each seed
round from min_seeds to max_seeds and stops once they are decided would, reading each look as if it were the only
one, be wrong more often than alpha. Each interval is therefore a repeated confidence interval (Jennison and Turnbull
1989): its critical value at a look with n of N planned seeds is the group sequential boundary of the alpha-spending
function at information fraction n / N, so that the chance of the true value leaving the interval at any look is at
most alpha. The spending function is O'Brien and Fleming's as Lan and DeMets approximate it, alpha / 2 a side,
alpha(t) = 4 - 4 Phi(z_{1-alpha/4} / sqrt t): little is spent at the first looks, almost all at the last, whose
critical value stays near a single test's (for 5% over looks at 3..10 of 10 seeds, z = 2.08 at the last, against
2.73 for Bonferroni over the 8 looks). The boundaries are computed by the recursive numerical integration of
Armitage, McPherson and Rowe (1969) on the z scale (checked in the tests against the published values and by
simulation) and carried to each look's t distribution by its nominal significance level (Jennison and Turnbull 2000,
section 3.8). Where a claim's share grows (another claim resolved), its boundaries are those of the new share at
every look (Maurer and Bretz 2013). A sweep of fixed seeds looks once: its boundary is the t quantile.

**Seeds won.** Of the seeds both sides ran, on how many the variant's value was lower (a tie counts half): a plain
count beside the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
from scipy import optimize, stats

from alexlab.errors import BadValue

ALPHA = 0.05  # the chance of any wrong verdict in a study: all its claims, all its looks
CONFIDENCE = 1 - ALPHA  # the level of the tables' plain intervals
MAX_SEEDS_NEEDED = 1000  # beyond this, "seeds needed" is reported as more than it
VERDICTS = ("agrees", "agrees, smaller", "contradicts", "no effect", "rules out the claimed size", "undecided")


@dataclass(frozen=True)
class Comparison:
    """variant against baseline. For a ratio, estimate and interval are on the log scale (see `ratio`)."""

    test: str  # "paired t", "Welch t" or "n/a" (fewer than 2 runs on a side)
    n_variant: int
    n_baseline: int
    n_pairs: int  # seeds both sides ran (those the paired test uses)
    estimate: float | None  # mean difference (paired: of the differences), variant minus baseline
    se: float | None  # its standard error
    dof: float | None
    spread: float | None  # sd of one difference: of the paired differences, or sqrt(s_v^2 + s_b^2) for Welch
    log_scale: bool = False
    confidence: float = CONFIDENCE  # of low and high

    @property
    def low(self) -> float | None:
        return self.interval(self.confidence)[0]

    @property
    def high(self) -> float | None:
        return self.interval(self.confidence)[1]

    def interval(self, confidence: float) -> tuple[float | None, float | None]:
        """The plain two-sided t interval at `confidence`."""
        if self.se is None or self.dof is None:
            return None, None
        return self.around(t_quantile(confidence, self.dof))

    def around(self, critical: float) -> tuple[float | None, float | None]:
        """estimate +- critical standard errors."""
        if self.estimate is None or self.se is None:
            return None, None
        return self.estimate - critical * self.se, self.estimate + critical * self.se

    @property
    def ratio(self) -> tuple[float | None, float | None, float | None]:
        """(geometric-mean ratio, low, high) of a log-scale comparison."""
        return tuple(None if v is None else math.exp(v) for v in (self.estimate, self.low, self.high))


def t_quantile(confidence: float, dof: float) -> float:
    """The two-sided t quantile of a `confidence` interval."""
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def compare(variant: dict, baseline: dict, log_scale: bool = False, confidence: float = CONFIDENCE) -> Comparison:
    """The difference variant minus baseline: paired over shared seeds (at least 2), else Welch. log_scale compares
    log(values) (ratios; values must be > 0). `confidence`: the level of its low and high."""
    v = {seed: _log(x) if log_scale else float(x) for seed, x in variant.items()}
    b = {seed: _log(x) if log_scale else float(x) for seed, x in baseline.items()}
    shared = sorted(set(v) & set(b), key=str)
    counts = {"n_variant": len(v), "n_baseline": len(b), "n_pairs": len(shared), "log_scale": log_scale,
              "confidence": confidence}  # fmt: skip
    if len(shared) >= 2:
        differences = np.array([v[seed] - b[seed] for seed in shared])
        sd = float(differences.std(ddof=1))
        return Comparison("paired t", **counts, estimate=float(differences.mean()), se=sd / math.sqrt(len(shared)),
                          dof=len(shared) - 1, spread=sd)  # fmt: skip
    if not v or not b:
        return Comparison("n/a", **counts, estimate=None, se=None, dof=None, spread=None)
    mean = float(np.mean(list(v.values())) - np.mean(list(b.values())))
    if len(v) < 2 or len(b) < 2:  # no interval; a seed both ran gives the better point (its noise shared)
        point = v[shared[0]] - b[shared[0]] if shared else mean
        return Comparison("n/a", **counts, estimate=point, se=None, dof=None, spread=None)
    var_v, var_b = np.var(list(v.values()), ddof=1), np.var(list(b.values()), ddof=1)
    se2 = var_v / len(v) + var_b / len(b)
    spread = float(math.sqrt(var_v + var_b))
    if se2 == 0:  # no spread on either side: the interval is the point
        return Comparison("Welch t", **counts, estimate=mean, se=0.0, dof=math.inf, spread=0.0)
    dof = se2**2 / ((var_v / len(v)) ** 2 / (len(v) - 1) + (var_b / len(b)) ** 2 / (len(b) - 1))
    return Comparison("Welch t", **counts, estimate=mean, se=math.sqrt(se2), dof=float(dof), spread=spread)


def _log(value: float) -> float:
    if not value > 0:
        raise BadValue(f"a ratio needs values > 0, got {value}")
    return math.log(value)


def seeds_won(variant: dict, baseline: dict) -> tuple[float, int]:
    """(won, n): of the n seeds both sides ran, on how many the variant's value was lower; a tie counts half."""
    shared = set(variant) & set(baseline)
    won = sum(1.0 if variant[s] < baseline[s] else 0.5 if variant[s] == baseline[s] else 0.0 for s in shared)
    return won, len(shared)


# --- group sequential boundaries ----------------------------------------------------------------------------------


def obrien_fleming_spending(alpha: float, fraction: float) -> float:
    """Lan and DeMets' O'Brien-Fleming-type spending function for a two-sided `alpha` (alpha / 2 a side): the share
    spent by information fraction t, 2 (2 - 2 Phi(z_{1-alpha/4} / sqrt t))."""
    if fraction <= 0:
        return 0.0
    return float(4 - 4 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 4) / math.sqrt(min(fraction, 1.0))))


@cache
def boundaries(alpha: float, fractions: tuple[float, ...], points: int = 2001) -> tuple[float, ...]:
    """Two-sided z boundaries c_1..c_K of a group sequential test at looks with information fractions `fractions`
    (increasing, the last 1): under no effect, the chance that |Z_k| first reaches c_k at look k is the spending
    function's increment alpha(t_k) - alpha(t_k-1). Z_k = S(t_k) / sqrt(t_k) for a Brownian motion S; the
    sub-density of Z_k on the continuation region is integrated look by look (Simpson's rule on `points` points)."""
    if not 0 < alpha < 1:
        raise BadValue(f"alpha must be between 0 and 1, got {alpha}")
    if list(fractions) != sorted(fractions) or not fractions[0] > 0 or fractions[-1] > 1:
        raise BadValue(f"information fractions must increase within (0, 1], got {list(fractions)}")
    result, previous, grid, density = [], 0.0, None, None
    for t in fractions:
        target = obrien_fleming_spending(alpha, t) - obrien_fleming_spending(alpha, previous)
        if grid is None:  # the first look: Z_1 is standard normal
            c = float(stats.norm.isf(target / 2))
        elif target > 1e-15:
            weights = _simpson(grid) * density
            exits = lambda c: _exit(c, grid, weights, previous, t) - target  # noqa: B023 -- called within the loop
            c = float(optimize.brentq(exits, 0.0, 40.0, xtol=1e-10))
        else:
            c = 40.0
        result.append(c)
        # the sub-density of Z at this look on (-c, c): the paths that have not stopped yet
        new_grid = np.linspace(-c, c, points)
        if grid is None:
            density = stats.norm.pdf(new_grid)
        else:
            step = t - previous
            kernel = stats.norm.pdf((new_grid[:, None] * math.sqrt(t) - grid[None, :] * math.sqrt(previous))
                                    / math.sqrt(step)) * math.sqrt(t / step)  # fmt: skip
            density = kernel @ (_simpson(grid) * density)
        grid, previous = new_grid, t
    return tuple(result)


def _exit(c: float, grid: np.ndarray, weights: np.ndarray, previous: float, t: float) -> float:
    """The chance that a path at Z = grid (weights: its sub-density times the integration weights) at information
    `previous` has |Z| >= c at information t."""
    shift, step = grid * math.sqrt(previous), math.sqrt(t - previous)
    outside = stats.norm.sf((c * math.sqrt(t) - shift) / step) + stats.norm.cdf((-c * math.sqrt(t) - shift) / step)
    return float(np.sum(weights * outside))


def _simpson(grid: np.ndarray) -> np.ndarray:
    """Simpson's rule weights on an evenly spaced grid of an odd number of points."""
    h = grid[1] - grid[0]
    weights = np.ones(len(grid))
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return weights * h / 3


@dataclass(frozen=True)
class Looks:
    """When a sweep looks at its verdicts: after each seed round from `first` to `last` seeds (seeds=auto), or once
    (first == last: a fixed number of seeds, or a report read on its own)."""

    first: int = 1
    last: int = 1

    def critical(self, alpha: float, seeds: int, dof: float) -> float:
        """The critical value of a two-sided repeated interval at level 1 - alpha, at the look with `seeds` paired
        seeds (the nearest planned look) and a t statistic of `dof` degrees of freedom."""
        return _critical(round(alpha, 12), self.first, self.last, seeds, dof)


@cache
def _critical(alpha: float, first: int, last: int, seeds: int, dof: float) -> float:
    if first >= last:
        z = float(stats.norm.isf(alpha / 2))
    else:
        fractions = tuple(n / last for n in range(first, last + 1))
        z = boundaries(alpha, fractions)[min(max(seeds, first), last) - first]
    nominal = 2 * stats.norm.sf(z)  # the look's nominal two-sided level, carried to the t distribution
    return float(stats.t.isf(nominal / 2, dof)) if math.isfinite(dof) else z


# --- verdicts -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """What a comparison is read against. `direction` +1: the claim says the variant's value is higher than the
    baseline's (a higher error, more steps, a larger gap); -1: lower. `size`: the claimed change's magnitude on the
    comparison's scale (points, or a log ratio), None without one. `margin`: the half-width of no effect."""

    direction: int
    size: float | None
    margin: float

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise BadValue(f"direction must be +1 or -1, got {self.direction}")


@dataclass(frozen=True)
class Reading:
    """A claim read at its share `alpha` of the study's error rate."""

    verdict: str
    alpha: float
    sign: tuple[float | None, float | None]  # the 1 - alpha repeated interval (variant minus baseline)
    band: tuple[float | None, float | None]  # the 1 - 2 alpha one: its ends are the size's and no effect's bounds
    negligible: bool = False  # agrees or contradicts, and inside the margin: real and too small to matter
    resolved: bool = False  # every hypothesis of the claim rejected: its share goes to the others (Holm)


def read(comparison: Comparison, claim: Claimed, alpha: float, looks: Looks = Looks(), bounded: int = 0) -> Reading:
    """The verdict on one claim at its share `alpha` (module docstring). `bounded`: where only one end of the
    intervals holds (values known to be at least, or at most, what was counted: a run that never reached a
    threshold, counted at the step its curve ends), on the claim's side: +1 only the low ends (the true value is at
    least the one measured), -1 only the high ends, 2 neither; a verdict that needs the other end stays undecided."""
    if comparison.se is None or comparison.estimate is None or bounded == 2:
        return Reading("undecided", alpha, (None, None), (None, None))
    seeds = comparison.n_pairs or min(comparison.n_variant, comparison.n_baseline)
    sign = comparison.around(looks.critical(alpha, seeds, comparison.dof))
    band = comparison.around(looks.critical(min(2 * alpha, 0.999), seeds, comparison.dof))
    # the claim's side positive: for direction -1 an interval is mirrored, its high end becoming its low end
    low, high = sorted(v * claim.direction for v in sign)
    band_low, band_high = sorted(v * claim.direction for v in band)
    inside = -claim.margin <= band_low and band_high <= claim.margin
    short = claim.size is not None and band_high < claim.size
    if low > 0:
        verdict = "agrees, smaller" if short else "agrees"
    elif high < 0:
        verdict = "contradicts"
    elif inside:
        verdict = "no effect"
    elif short:
        verdict = "rules out the claimed size"
    else:
        verdict = "undecided"
    if bounded == 1 and verdict != "agrees":  # only "at least": the sign on the claim's side, no size, no equivalence
        verdict = "agrees" if low > 0 else "undecided"
    elif bounded == -1:  # only "at most": the other side's sign, or the size ruled out
        verdict = "contradicts" if high < 0 else "rules out the claimed size" if short else "undecided"
    signed = verdict in ("agrees", "agrees, smaller", "contradicts")
    resolved = signed and inside and (claim.size is None or short) and not bounded
    return Reading(verdict, alpha, sign, band, negligible=signed and inside and not bounded, resolved=resolved)


def read_claims(
    items: list[tuple[Comparison, Claimed]], looks: Looks = Looks(), alpha: float = ALPHA, bounds: list | None = None
) -> list[Reading]:
    """Every claim of a study read with Holm's step-down over the claims (module docstring): each at alpha / the
    claims not yet fully resolved; a resolved claim keeps the reading of the share it was resolved at. `bounds`:
    each claim's `bounded` (read)."""
    bounds = bounds or [0] * len(items)
    active = set(range(len(items)))
    readings: list[Reading | None] = [None] * len(items)
    while active:
        share = alpha / len(active)
        for i in active:
            readings[i] = read(*items[i], share, looks, bounds[i])
        resolved = {i for i in active if readings[i].resolved}
        if not resolved:
            break
        active -= resolved
    return readings


def seeds_needed(comparison: Comparison, claim: Claimed, alpha: float, looks: Looks = Looks()) -> int | None:
    """How many seeds per side the observed mean and spread say would decide an undecided claim at its share
    `alpha`: the fewest n at which the sign interval would exclude 0, or the band fit inside the margin or fall
    short of the size. None without a spread; MAX_SEEDS_NEEDED + 1 for more than that."""
    if comparison.estimate is None or comparison.spread is None:
        return None
    paired = comparison.test == "paired t"
    if comparison.spread == 0:
        return max(2, comparison.n_pairs or min(comparison.n_variant, comparison.n_baseline))
    for n in range(2, MAX_SEEDS_NEEDED + 1):
        dof = n - 1 if paired else 2 * n - 2
        projected = replace(comparison, se=comparison.spread / math.sqrt(n), dof=dof, n_pairs=n if paired else 0,
                            n_variant=n, n_baseline=n)  # fmt: skip
        if read(projected, claim, alpha, looks).verdict != "undecided":
            return n
    return MAX_SEEDS_NEEDED + 1
