"""The power calculation that fixed the follow_up study's design (sweeps/follow_up.yaml) before it ran.

The two claims paper_ablations left undecided that a study of their own could decide: ten crops against the centre
view (within the baseline's runs) and dropout's effect on the held-out error. Their paired spreads and estimates are
paper_ablations' (studies/paper_ablations, 10 seeds). Each simulated study draws a per-seed difference from a normal
with that spread around an assumed true effect (the measured one, three quarters and half of it), reads both claims
as `alexlab report` does (alexlab.stats.read_claims: Holm over the 2 named claims at 5%, repeated intervals over the
looks from 3 to max_seeds seeds, the default margin of 0.25 points) after each round, stops an arm whose claim is
decided, and stops at a cap of runs (the time budget). pooling (spread 0.83, estimate -0.02) is simulated as a third
claim to show why it is left out.

    python studies/follow_up_power.py          (about a minute; prints the table the sweep's comment quotes)
"""

import numpy as np

from alexlab.report import build_report
from alexlab.report.model import DEFAULT_MARGIN
from alexlab.stats import Claimed, Looks, compare, read_claims

REPS = 300


def measured(sweep="studies/paper_ablations") -> dict:
    """change -> (estimate, spread) of the claims paper_ablations left undecided."""
    report = build_report(sweep)
    return {f.change.split(" ")[0]: (f.comparison.estimate, f.comparison.spread) for f in report.undecided()}


def simulate(effects, spreads, max_seeds, cap, rng) -> tuple[float, float, np.ndarray]:
    """(chance that every claim is decided, mean runs, chance each claim is decided); claim 0 is read within the
    baseline's runs, each other claim costs one run a round while it is open."""
    looks, k = Looks(3, max_seeds), len(effects)
    all_decided, runs_total, each = 0, 0, np.zeros(k)
    for _ in range(REPS):
        draws = [rng.normal(effect, spread, max_seeds) for effect, spread in zip(effects, spreads, strict=True)]
        open_, seeds_of, runs = [True] * k, [0] * k, 0
        for n in range(1, max_seeds + 1):
            cost = 1 + sum(open_[1:])
            if runs + cost > cap:
                break
            runs += cost
            seeds_of = [n if o else s for o, s in zip(open_, seeds_of, strict=True)]
            if n < looks.first:
                continue
            claimed = Claimed(1, None, DEFAULT_MARGIN)  # both claims: the variant's error higher, no size
            items = [(compare(dict(enumerate(d[:s])), dict.fromkeys(range(s), 0.0)), claimed)
                     for d, s in zip(draws, seeds_of, strict=True)]  # fmt: skip
            open_ = [reading.verdict == "undecided" for reading in read_claims(items, looks, 0.05)]
            if not any(open_):
                break
        all_decided += not any(open_)
        runs_total += runs
        each += [not o for o in open_]
    return all_decided / REPS, runs_total / REPS, each / REPS


def main() -> None:
    found = measured()
    print("paper_ablations (10 seeds):", {k: f"{e:+.3f} (spread {s:.3f})" for k, (e, s) in found.items()})
    rng = np.random.default_rng(0)
    cap = 31  # runs: the 1.6 hours left of 6 hours at 185 s a run (paper_ablations: baseline 177 s, dropout_off 194)
    for scale in (1.0, 0.75, 0.5):
        two, three = ("test_views", "dropout"), ("test_views", "dropout", "pooling")
        for names, max_seeds in ((two, 12), (two, 14), (two, 16), (two, 20), (three, 16)):
            effects = [found[n][0] * (scale if n != "pooling" else 1) for n in names]
            decided, runs, each = simulate(effects, [found[n][1] for n in names], max_seeds, cap, rng)
            print(f"effects x{scale:<4} {'+'.join(names):28} max_seeds {max_seeds}: all decided {decided:.2f}, "
                  f"each {', '.join(f'{p:.2f}' for p in each)}, mean runs {runs:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
